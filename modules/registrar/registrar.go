// Package registrar is Kamailio's registrar module: save() processes REGISTER requests into the location
// table of module usrloc and answers them (RFC 3261 §10.3, Path of RFC 3327), lookup() turns a Request-URI
// into the registered contacts (R-URI, branches, $du from Path or the received address), and $ulc gives
// scripts the contacts of an AOR.
package registrar

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/usrloc"
)

func init() {
	engine.Register(engine.Module{Name: "registrar", New: func() engine.Instance { return New() }, Requires: []string{"usrloc"}})
}

// Path modes (Kamailio's path_mode).
const (
	PathModeOff    = 0 // Path saved, never in the reply
	PathModeLazy   = 1 // Path saved, echoed when the UA supports path
	PathModeStrict = 2 // Path saved, echoed when supported; otherwise 420 with Unsupported: path (RFC 3327)
)

// Registrar holds the module parameters (Kamailio's registrar modparams; use_domain is usrloc's there).
type Registrar struct {
	// DefaultExpires is used when a contact has neither an expires parameter nor an Expires header.
	DefaultExpires int `toml:"default_expires" reload:"live"`
	// MinExpires: a lower non-zero expiry is raised to it (min_expires_mode 0) or refused with 423; 0 = no
	// minimum.
	MinExpires int `toml:"min_expires" reload:"live"`
	// MinExpiresMode 0 raises a too short expiry to min_expires (Kamailio's default), 1 answers
	// 423 Interval Too Brief with Min-Expires (RFC 3261 §10.3 step 7).
	MinExpiresMode int `toml:"min_expires_mode" reload:"live"`
	// MaxExpires caps the expiry; 0 = no cap.
	MaxExpires int `toml:"max_expires" reload:"live"`
	// MaxContacts is the most contacts an AOR may have; more are refused with 503; 0 = no limit.
	MaxContacts int `toml:"max_contacts" reload:"live"`
	// DefaultQ is the q (× 1000) of a contact without a q parameter; -1 = none (sorts after every q).
	DefaultQ int `toml:"default_q" reload:"live"`
	// RealmPrefix is stripped from the domain of the AOR (with use_domain): "sip." makes sip.example.com
	// the same AOR domain as example.com.
	RealmPrefix string `toml:"realm_prefix" reload:"live"`
	// AppendBranches: lookup appends the contacts after the first as branches (parallel forking).
	AppendBranches bool `toml:"append_branches" reload:"live"`
	// CaseSensitive keeps the case of the AOR's user part (the domain is always lower-cased).
	CaseSensitive bool `toml:"case_sensitive" reload:"live"`
	// UseDomain makes the AOR user@domain; false = the user part alone (Kamailio's usrloc use_domain).
	UseDomain bool `toml:"use_domain"`
	// ReceivedAVP names the AVP where nathelper's fix_nated_register put the source URI; saved as the
	// binding's received address. "" = not used.
	ReceivedAVP string `toml:"received_avp" reload:"live"`
	// ReceivedParam is the Contact parameter that shows the received address in the 200 OK; "" = none.
	ReceivedParam string `toml:"received_param" reload:"live"`
	// MethodFiltering: lookup of an initial request skips contacts whose Allow did not list its method.
	MethodFiltering bool `toml:"method_filtering" reload:"live"`
	// UsePath saves the Path headers of a REGISTER and routes to the contact through them.
	UsePath bool `toml:"use_path" reload:"live"`
	// PathMode is 0 (off: not echoed), 1 (lazy: echoed when supported) or 2 (strict: 420 when not supported).
	PathMode int `toml:"path_mode" reload:"live"`
	// PathUseReceived takes the received parameter of the first Path URI as the received address (and
	// sets usrloc's nat_bflag), for a registrar behind a load balancer.
	PathUseReceived bool `toml:"path_use_received" reload:"live"`
	// PathCheckLocal: lookup skips a first Path hop that is this proxy.
	PathCheckLocal bool `toml:"path_check_local" reload:"live"`
	// RetryAfter adds Retry-After to 5xx replies of save; 0 = none.
	RetryAfter int `toml:"retry_after" reload:"live"`
	// ContactMaxSize is the longest Contact URI accepted (400 beyond).
	ContactMaxSize int `toml:"contact_max_size" reload:"live"`
	// CSeqDelay: a REGISTER with the same Call-ID and CSeq as the stored binding is a retransmission
	// (answered 200, nothing changes) within this many seconds of the last update, an error after
	// (Kamailio's usrloc cseq_delay).
	CSeqDelay int `toml:"cseq_delay" reload:"live"`

	// XavpCfg names the xavp whose children tune the module per message (Kamailio's xavp_cfg): here the
	// match_callid, match_received and match_contact values registered_flags/registered_action compare
	// the contacts with. "" = none (the match flags then change nothing, as in Kamailio).
	XavpCfg string `toml:"xavp_cfg" reload:"live"`

	rcvAVP string  // the AVP name in ReceivedAVP
	rt     *shared // what the running instance and its reloaded parameter sets share
}

// shared is the state of the running module. Workers read the parameters from cur, a copy of the
// Registrar that Reload replaces whole (the instance the engine holds is never written after Start).
type shared struct {
	ul  *usrloc.Usrloc
	log *slog.Logger

	accepted, rejected atomic.Uint64
	sockets            sync.Map // *engine.Listener → its String(), made once per socket
	cur                atomic.Pointer[Registrar]
}

// live returns the current parameter set (r itself before Start).
func (r *Registrar) live() *Registrar {
	if p := r.rt.cur.Load(); p != nil {
		return p
	}
	return r
}

// Reload applies changed live parameters (every one but use_domain, which changes the AOR of the stored
// bindings: it needs a restart).
func (r *Registrar) Reload(next engine.Instance) error {
	n, ok := next.(*Registrar)
	if !ok {
		return fmt.Errorf("registrar reload: got %T", next)
	}
	if err := n.Validate(); err != nil {
		return err
	}
	c := *n
	c.UseDomain = r.live().UseDomain
	c.rt = r.rt
	r.rt.cur.Store(&c)
	return nil
}

// socketName is l.String() without building it again for every REGISTER.
func (r *Registrar) socketName(l *engine.Listener) string {
	if s, ok := r.rt.sockets.Load(l); ok {
		return s.(string)
	}
	s := l.String()
	r.rt.sockets.Store(l, s)
	return s
}

// New returns an instance with Kamailio's defaults (received_avp set to the AVP nathelper uses here).
func New() *Registrar {
	return &Registrar{DefaultExpires: 3600, MinExpires: 60, DefaultQ: -1, AppendBranches: true,
		ReceivedAVP: "$avp(RECEIVED)", ReceivedParam: "received", PathMode: PathModeStrict,
		ContactMaxSize: 512, CSeqDelay: 20, rt: &shared{}}
}

// Validate checks the parameters.
func (r *Registrar) Validate() error {
	nonNeg := []struct {
		name string
		v    int
	}{{"default_expires", r.DefaultExpires}, {"min_expires", r.MinExpires}, {"max_expires", r.MaxExpires},
		{"max_contacts", r.MaxContacts}, {"retry_after", r.RetryAfter}, {"cseq_delay", r.CSeqDelay}}
	for _, p := range nonNeg {
		if p.v < 0 {
			return fmt.Errorf("%s: expected 0 or more, got %d", p.name, p.v)
		}
	}
	if r.MinExpiresMode != 0 && r.MinExpiresMode != 1 {
		return fmt.Errorf("min_expires_mode: expected 0 (raise to min_expires) or 1 (423), got %d", r.MinExpiresMode)
	}
	if r.DefaultQ < -1 || r.DefaultQ > 1000 {
		return fmt.Errorf("default_q: expected -1 (none) or 0..1000, got %d", r.DefaultQ)
	}
	if r.PathMode < 0 || r.PathMode > 2 {
		return fmt.Errorf("path_mode: expected 0 (off), 1 (lazy) or 2 (strict), got %d", r.PathMode)
	}
	if r.ContactMaxSize < 1 || r.ContactMaxSize > 65535 {
		return fmt.Errorf("contact_max_size: expected 1..65535, got %d", r.ContactMaxSize)
	}
	if strings.ContainsAny(r.ReceivedParam, " ;=,\"<>") {
		return fmt.Errorf("received_param: expected a parameter name, got %q", r.ReceivedParam)
	}
	if strings.ContainsAny(r.XavpCfg, " $()=>;,[]\"") {
		return fmt.Errorf("xavp_cfg: expected an xavp name without $xavp( ), got %q", r.XavpCfg)
	}
	name, err := avpName(r.ReceivedAVP)
	if err != nil {
		return fmt.Errorf("received_avp: %w", err)
	}
	r.rcvAVP = name
	return nil
}

// avpName takes "$avp(name)" (or Kamailio's "$avp(s:name)") and returns name; "" stays "".
func avpName(spec string) (string, error) {
	if spec == "" {
		return "", nil
	}
	if !strings.HasPrefix(spec, "$avp(") || !strings.HasSuffix(spec, ")") {
		return "", fmt.Errorf("expected $avp(name) or \"\", got %q", spec)
	}
	name := strings.TrimPrefix(spec[5:len(spec)-1], "s:")
	if name == "" || strings.ContainsAny(name, "()$ ") {
		return "", fmt.Errorf("expected $avp(name) or \"\", got %q", spec)
	}
	return name, nil
}

// Start finds the location table of module usrloc.
func (r *Registrar) Start(env *engine.Env) error {
	r.rt.log = env.Log
	if r.rt.log == nil {
		r.rt.log = slog.Default()
	}
	if r.rcvAVP == "" && r.ReceivedAVP != "" { // Validate not run (a test building the instance itself)
		if err := r.Validate(); err != nil {
			return err
		}
	}
	ul, err := usrloc.FromEngine(env.Engine)
	if err != nil {
		return fmt.Errorf("registrar needs the location table: %w", err)
	}
	r.rt.ul = ul
	c := *r
	r.rt.cur.Store(&c)
	return nil
}

var errNoStore = errors.New("location store not open (usrloc not started)")

// store returns usrloc's store; usrloc opens it in its Start, which may run after ours.
func (r *Registrar) store() (usrloc.Store, error) {
	if r.rt.ul == nil {
		return nil, errNoStore
	}
	s := r.rt.ul.Store()
	if s == nil {
		return nil, errNoStore
	}
	return s, nil
}

func (r *Registrar) logger() *slog.Logger {
	if r.rt.log == nil {
		return slog.Default()
	}
	return r.rt.log
}

// Exports: KSR.registrar.* with Kamailio 5.6's KEMI signatures.
func (r *Registrar) Exports() []engine.Export {
	return []engine.Export{
		{Name: "save", Fn: r.save},
		{Name: "save_uri", Fn: r.saveURI},
		{Name: "lookup", Fn: r.lookup},
		{Name: "lookup_uri", Fn: r.lookupURI},
		{Name: "lookup_to_dset", Fn: r.lookupToDset},
		{Name: "lookup_branches", Fn: r.lookupBranches},
		{Name: "registered", Fn: r.registered},
		{Name: "registered_uri", Fn: r.registeredURI},
		{Name: "registered_flags", Fn: r.registeredFlags},
		{Name: "registered_action", Fn: r.registeredAction},
		{Name: "unregister", Fn: r.unregister},
		{Name: "unregister_ruid", Fn: r.unregisterRUID},
		{Name: "reg_fetch_contacts", Fn: r.fetchContacts},
		{Name: "reg_free_contacts", Fn: r.freeContacts},
		{Name: "reg_send_reply", Fn: r.sendPendingReply},
		{Name: "set_q_override", Fn: r.setQOverride},
		{Name: "add_sock_hdr", Fn: r.addSockHdr},
	}
}

// PVs: $ulc(profile=>attr).
func (r *Registrar) PVs() []engine.PV {
	return []engine.PV{{Name: "ulc", Get: r.getULC}}
}

// Gauges: registrations accepted and refused (Kamailio's accepted_regs, rejected_regs).
func (r *Registrar) Gauges() []engine.Gauge {
	return []engine.Gauge{
		{Name: "registrar_accepted_regs", Help: "REGISTER requests saved.",
			Value: func() float64 { return float64(r.rt.accepted.Load()) }},
		{Name: "registrar_rejected_regs", Help: "REGISTER requests refused by save.",
			Value: func() float64 { return float64(r.rt.rejected.Load()) }},
	}
}

// msgState is what the registrar keeps for one message: $ulc profiles, the reply prepared by save with
// flag 0x02 for reg_send_reply, and set_q_override's q.
type msgState struct {
	profiles  map[string]*profile
	pending   *pendingReply
	qOverride int // q × 1000; -2 = none
}

func (r *Registrar) state(m *engine.Msg, create bool) *msgState {
	if st, ok := m.ModState("registrar").(*msgState); ok {
		return st
	}
	if !create {
		return nil
	}
	st := &msgState{qOverride: -2}
	m.SetModState("registrar", st)
	return st
}
