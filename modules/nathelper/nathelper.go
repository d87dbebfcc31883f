// Package nathelper helps UAs behind NAT (Kamailio's nathelper): it detects them (nat_uac_test), rewrites
// or aliases their Contact to the address their packets really come from, hands that address to the
// registrar (fix_nated_register), and keeps their NAT bindings open with keepalives to the registered
// contacts (natping_interval), unregistering those that stop answering (keepalive_timeout).
package nathelper

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/usrloc"
)

func init() {
	engine.Register(engine.Module{Name: "nathelper", New: func() engine.Instance { return New() }, After: []string{"usrloc"}})
}

// Nathelper holds the module parameters and, once started, the pinger.
type Nathelper struct {
	// NatpingInterval is the period of the keepalives to registered contacts, in seconds; 0 = none
	// (Kamailio's natping_interval, default 0).
	NatpingInterval int `toml:"natping_interval"`
	// PingNatedOnly pings only the contacts saved with usrloc's nat_bflag (Kamailio's ping_nated_only).
	PingNatedOnly bool `toml:"ping_nated_only"`
	// SippingFrom is the From URI of SIP keepalives; required when sipping_bflag is set.
	SippingFrom string `toml:"sipping_from"`
	// SippingMethod is the method of SIP keepalives (default OPTIONS).
	SippingMethod string `toml:"sipping_method"`
	// SippingBflag is the branch flag (0..63) of the contacts pinged with a SIP request instead of the
	// 4-byte UDP packet; -1 = none. With ping_nated_only false, every contact gets a SIP ping when set.
	SippingBflag int `toml:"sipping_bflag"`
	// NatpingDisableBflag is the branch flag of the contacts never pinged; -1 = none.
	NatpingDisableBflag int `toml:"natping_disable_bflag"`
	// ForceSocket is the socket pings leave from ("udp:IP:PORT" as in the listen list); "" = the socket
	// the contact registered on.
	ForceSocket string `toml:"force_socket"`
	// ReceivedAVP is the AVP fix_nated_register writes the source URI to; the registrar reads the same
	// name. Written "RECEIVED" or "$avp(RECEIVED)"; "" disables fix_nated_register (it returns 1).
	ReceivedAVP string `toml:"received_avp"`
	// KeepaliveTimeout removes a contact pinged with SIP requests that has not answered for this many
	// seconds; 0 = never (Kamailio's keepalive_timeout).
	KeepaliveTimeout int `toml:"keepalive_timeout"`
	// AliasName is the Contact/R-URI parameter of add_contact_alias and handle_ruri_alias.
	AliasName string `toml:"alias_name"`
	// NatAddrMode 1 also counts 192.0.0.0/24 (RFC 7335 reserved) as private in the RFC1918 tests.
	NatAddrMode int `toml:"nat_addr_mode"`
	// NortpproxyStr is the SDP line fix_nated_sdp flag 4 adds.
	NortpproxyStr string `toml:"nortpproxy_str"`
	// AppendSDPOldmediaip adds a=oldmediaip lines when fix_nated_sdp rewrites an address.
	AppendSDPOldmediaip bool `toml:"append_sdp_oldmediaip"`

	avp string // the AVP name without $avp()

	log    *slog.Logger
	e      *engine.Engine
	pinger atomic.Pointer[pinger]
}

// New returns an instance with the defaults (Kamailio's, except received_avp which names the AVP the
// registrar reads by default).
func New() *Nathelper {
	return &Nathelper{SippingMethod: "OPTIONS", SippingBflag: -1, NatpingDisableBflag: -1,
		ReceivedAVP: "$avp(RECEIVED)", AliasName: "alias", NatAddrMode: 1, NortpproxyStr: "a=nortpproxy:yes",
		AppendSDPOldmediaip: true}
}

// Validate checks the parameters.
func (n *Nathelper) Validate() error {
	if n.NatpingInterval < 0 || n.NatpingInterval > 3600 {
		return fmt.Errorf("natping_interval: expected 0 (off) or 1..3600 seconds, got %d", n.NatpingInterval)
	}
	if n.SippingBflag < -1 || n.SippingBflag > 63 {
		return fmt.Errorf("sipping_bflag: expected -1 (none) or 0..63, got %d", n.SippingBflag)
	}
	if n.NatpingDisableBflag < -1 || n.NatpingDisableBflag > 63 {
		return fmt.Errorf("natping_disable_bflag: expected -1 (none) or 0..63, got %d", n.NatpingDisableBflag)
	}
	if n.SippingMethod == "" || strings.ContainsAny(n.SippingMethod, " \t\r\n;:") {
		return fmt.Errorf("sipping_method: expected a SIP method token, got %q", n.SippingMethod)
	}
	if n.SippingFrom != "" {
		if !strings.HasPrefix(strings.ToLower(n.SippingFrom), "sip:") || strings.ContainsAny(n.SippingFrom, " \t\r\n<>;") {
			return fmt.Errorf("sipping_from: expected a sip: URI without parameters, got %q", n.SippingFrom)
		}
	}
	if n.SippingBflag >= 0 && n.NatpingInterval > 0 && n.SippingFrom == "" {
		return fmt.Errorf("sipping_from: expected a sip: URI when sipping_bflag is set, got \"\"")
	}
	if n.KeepaliveTimeout < 0 {
		return fmt.Errorf("keepalive_timeout: expected 0 (never) or seconds, got %d", n.KeepaliveTimeout)
	}
	if n.KeepaliveTimeout > 0 && n.KeepaliveTimeout < n.NatpingInterval {
		return fmt.Errorf("keepalive_timeout: expected a few times natping_interval (%d), got %d", n.NatpingInterval, n.KeepaliveTimeout)
	}
	if n.ForceSocket != "" && !strings.HasPrefix(n.ForceSocket, "udp:") {
		return fmt.Errorf("force_socket: expected a UDP listen socket \"udp:IP:PORT\", got %q", n.ForceSocket)
	}
	avp := n.ReceivedAVP
	if strings.HasPrefix(avp, "$avp(") && strings.HasSuffix(avp, ")") {
		avp = avp[5 : len(avp)-1]
	}
	if strings.ContainsAny(avp, "$() \t") {
		return fmt.Errorf("received_avp: expected an AVP name like \"RECEIVED\" or \"$avp(RECEIVED)\", got %q", n.ReceivedAVP)
	}
	n.avp = avp
	if n.AliasName == "" || strings.ContainsAny(n.AliasName, " \t;=~<>") {
		return fmt.Errorf("alias_name: expected a URI parameter name, got %q", n.AliasName)
	}
	if n.NatAddrMode != 0 && n.NatAddrMode != 1 {
		return fmt.Errorf("nat_addr_mode: expected 0 or 1, got %d", n.NatAddrMode)
	}
	n.NortpproxyStr = strings.TrimRight(n.NortpproxyStr, "\r\n")
	return nil
}

// Exports: KSR.nathelper.*, as Kamailio 5.6 exports them to KEMI.
func (n *Nathelper) Exports() []engine.Export {
	return []engine.Export{
		{Name: "nat_uac_test", Fn: n.natUACTest},
		{Name: "is_rfc1918", Fn: n.isRFC1918},
		{Name: "fix_nated_contact", Fn: n.fixNatedContact},
		{Name: "fix_nated_register", Fn: n.fixNatedRegister},
		{Name: "add_contact_alias", Fn: n.addContactAlias},
		{Name: "add_contact_alias_addr", Fn: n.addContactAliasAddr},
		{Name: "set_contact_alias", Fn: n.setContactAlias},
		{Name: "set_contact_alias_trim", Fn: n.setContactAliasTrim},
		{Name: "handle_ruri_alias", Fn: n.handleRURIAlias},
		{Name: "handle_ruri_alias_mode", Fn: n.handleRURIAliasMode},
		{Name: "set_alias_to_pv", Fn: n.setAliasToPV},
		{Name: "add_rcv_param", Fn: n.addRcvParam},
		{Name: "fix_nated_sdp", Fn: n.fixNatedSDP},
		{Name: "fix_nated_sdp_ip", Fn: n.fixNatedSDPIP},
	}
}

// Start starts the pinger when natping_interval is set. usrloc, when loaded, has started already (After).
func (n *Nathelper) Start(env *engine.Env) error {
	n.log, n.e = env.Log, env.Engine
	if n.NatpingInterval == 0 {
		return nil
	}
	ul, err := usrloc.FromEngine(env.Engine)
	if err != nil {
		return fmt.Errorf("natping_interval: the keepalives need the location table: %w", err)
	}
	if n.PingNatedOnly && ul.NatBflag < 0 {
		return fmt.Errorf("ping_nated_only: set nat_bflag in [modules.usrloc] (the flag that marks NATed contacts)")
	}
	p := newPinger(n)
	n.pinger.Store(p)
	ready := make(chan struct{})
	close(ready) // usrloc started before this module (Module.After), its store is open
	p.start(ready)
	return nil
}

// Stop stops the pinger.
func (n *Nathelper) Stop() error {
	if p := n.pinger.Swap(nil); p != nil {
		p.stop()
	}
	return nil
}

// RPC: nathelper.enable_ping, as Kamailio's.
func (n *Nathelper) RPC() []engine.Command {
	return []engine.Command{{Name: "nathelper.enable_ping", Help: "enable (1) or disable (0) the NAT keepalives",
		Fn: func(args []string) (any, error) {
			p := n.pinger.Load()
			if p == nil {
				return nil, fmt.Errorf("nathelper.enable_ping: NAT pinging is off (natping_interval = 0)")
			}
			if len(args) != 1 {
				return nil, fmt.Errorf("nathelper.enable_ping: expected one argument, 0 or 1")
			}
			v, err := strconv.Atoi(args[0])
			if err != nil {
				return nil, fmt.Errorf("nathelper.enable_ping: expected a number, got %q", args[0])
			}
			p.enabled.Store(v != 0)
			return map[string]any{"enabled": v != 0}, nil
		}}}
}

// Gauges: keepalives sent, answered, and contacts removed for silence.
func (n *Nathelper) Gauges() []engine.Gauge {
	g := func(f func(p *pinger) uint64) func() float64 {
		return func() float64 {
			if p := n.pinger.Load(); p != nil {
				return float64(f(p))
			}
			return 0
		}
	}
	return []engine.Gauge{
		{Name: "nathelper_pings_sent", Help: "NAT keepalives sent.", Value: g(func(p *pinger) uint64 { return p.sent.Load() })},
		{Name: "nathelper_pings_answered", Help: "SIP keepalives answered.", Value: g(func(p *pinger) uint64 { return p.answered.Load() })},
		{Name: "nathelper_contacts_timed_out", Help: "Contacts unregistered after keepalive_timeout.", Value: g(func(p *pinger) uint64 { return p.removed.Load() })},
	}
}

// OnReply absorbs the replies to the SIP keepalives (Kamailio's sipping_rpl_filter) and notes that the
// contact answered (keepalive_timeout).
func (n *Nathelper) OnReply(m *engine.Msg) bool {
	p := n.pinger.Load()
	if p == nil {
		return false
	}
	return p.onReply(m)
}

// state is the per-message state: Kamailio refuses to change the Contact twice.
type state struct {
	contactChanged bool
	clEdited       bool // Content-Length has its edit (fix_nated_sdp)
	bodyDelta      int  // how much the body edits changed its length
}

func msgState(m *engine.Msg) *state {
	if st, ok := m.ModState("nathelper").(*state); ok {
		return st
	}
	st := &state{}
	m.SetModState("nathelper", st)
	return st
}
