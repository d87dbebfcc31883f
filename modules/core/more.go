package core

import (
	"github.com/siplua/siplua/engine/rawsip"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine"
)

// The rest of Kamailio 5.6's core KEMI functions (src/core/kemi.c): transport and address checks, script
// and per-branch flags, send flags, KSR.route. siplua has UDP and TCP only, so the TLS, SCTP and WebSocket
// checks answer false, as Kamailio's do for a message that did not come over them.

// coreState is what the core functions keep for one message (engine.Msg.ModState("core")).
type coreState struct {
	fwdClose    bool   // set_forward_close
	replyClose  bool   // set_reply_close
	advAddr     string // set_advertised_address
	advPort     string // set_advertised_port
	tcpAliasVia int    // add_tcp_alias / add_tcp_alias_via: the port aliased to the connection
}

func stateOf(m *engine.Msg) *coreState {
	if s, ok := m.ModState("core").(*coreState); ok {
		return s
	}
	s := &coreState{}
	m.SetModState("core", s)
	return s
}

// moreExports are appended to Exports.
func (c *Core) moreExports() []engine.Export {
	ex := []engine.Export{
		{Name: "is_IPv4", Fn: func(m *engine.Msg) bool { return localAddr(m).Is4() || localAddr(m).Is4In6() }},
		{Name: "is_IPv6", Fn: func(m *engine.Msg) bool { a := localAddr(m); return a.Is6() && !a.Is4In6() }},
		{Name: "is_src_port", Fn: func(m *engine.Msg, p int) bool { return int(m.Src.Port()) == p }},
		{Name: "is_dst_port", Fn: func(m *engine.Msg, p int) bool { return m.Local != nil && int(m.Local.Addr.Port()) == p }},
		{Name: "is_myself_duri", Fn: func(m *engine.Msg) bool { return m.DstURI != "" && isMyselfURI(m, m.DstURI) }},
		{Name: "is_myself_nhuri", Fn: func(m *engine.Msg) bool {
			if m.DstURI != "" {
				return isMyselfURI(m, m.DstURI)
			}
			return m.IsRequest() && isMyselfURI(m, m.RURI())
		}},
		{Name: "is_myself_suri", Fn: func(m *engine.Msg) bool { return m.E.IsMyself(m.Src.Addr().Unmap().String(), int(m.Src.Port())) }},
		{Name: "setsflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.SFlags, f, true) }},
		{Name: "resetsflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.SFlags, f, false) }},
		{Name: "issflagset", Fn: func(m *engine.Msg, f int) bool { return isBit(m.SFlags, f) }},
		{Name: "setbiflag", Fn: func(m *engine.Msg, f, idx int) bool { return branchFlag(m, f, idx, 1) }},
		{Name: "resetbiflag", Fn: func(m *engine.Msg, f, idx int) bool { return branchFlag(m, f, idx, 0) }},
		{Name: "isbiflagset", Fn: func(m *engine.Msg, f, idx int) bool { return branchFlag(m, f, idx, -1) }},
		{Name: "set_forward_close", Fn: func(m *engine.Msg) bool { stateOf(m).fwdClose = true; return true }},
		{Name: "set_forward_no_connect", Fn: func(m *engine.Msg) bool { m.ForwardNoConnect = true; return true }},
		{Name: "set_reply_close", Fn: func(m *engine.Msg) bool { stateOf(m).replyClose = true; return true }},
		{Name: "add_local_rport", Fn: func(m *engine.Msg) bool { m.LocalRport = true; return true }},
		{Name: "set_advertised_address", Fn: func(m *engine.Msg, a string) int { return setAdvertised(m, a, 128, false) }},
		{Name: "set_advertised_port", Fn: func(m *engine.Msg, p string) int { return setAdvertised(m, p, 8, true) }},
		{Name: "add_tcp_alias", Fn: func(m *engine.Msg, port int) int {
			if m.Proto == engine.TCP {
				stateOf(m).tcpAliasVia = port
			}
			return 1
		}},
		{Name: "add_tcp_alias_via", Fn: func(m *engine.Msg) int {
			if m.Proto == engine.TCP {
				if v := m.Parsed().Via(); v != nil {
					stateOf(m).tcpAliasVia = v.Port
				}
			}
			return 1
		}},
		{Name: "get_debug", Fn: getDebug},
		{Name: "route", Fn: c.route},
		{Name: "to_UDP", Fn: func(m *engine.Msg) bool { return toProto(m) == "udp" }},
		{Name: "to_TCP", Fn: func(m *engine.Msg) bool { return toProto(m) == "tcp" }},
		{Name: "to_TLS", Fn: func(m *engine.Msg) bool { return toProto(m) == "tls" }},
		{Name: "to_SCTP", Fn: func(m *engine.Msg) bool { return toProto(m) == "sctp" }},
		{Name: "to_WS", Fn: func(m *engine.Msg) bool { return toProto(m) == "ws" }},
		{Name: "to_WSS", Fn: func(m *engine.Msg) bool { return toProto(m) == "wss" }},
		{Name: "to_WSX", Fn: func(m *engine.Msg) bool { p := toProto(m); return p == "ws" || p == "wss" }},
		{Name: "to_IPv4", Fn: func(m *engine.Msg) bool { return toAF(m) == 4 }},
		{Name: "to_IPv6", Fn: func(m *engine.Msg) bool { return toAF(m) == 6 }},
	}
	for _, meth := range []string{"GET", "POST", "PUT", "DELETE"} {
		meth := meth
		ex = append(ex, engine.Export{Name: "is_" + meth, Fn: func(m *engine.Msg) bool { return m.Method() == meth }})
	}
	return ex
}

// localAddr is the address of the socket the message came in on (Kamailio's bind_address af).
func localAddr(m *engine.Msg) netip.Addr {
	if m.Local != nil {
		return m.Local.Addr.Addr()
	}
	return m.Src.Addr()
}

// branchFlag sets (op 1), resets (0) or tests (-1) flag f of branch idx: 0 is the R-URI branch, i > 0 the
// i-th appended branch (Kamailio's dset index + 1 semantics of setbflag(branch, flag)).
func branchFlag(m *engine.Msg, f, idx, op int) bool {
	var flags *uint64
	switch {
	case idx == 0:
		flags = &m.BFlags
	case idx > 0 && idx <= len(m.Branches):
		flags = &m.Branches[idx-1].Flags
	default:
		return false
	}
	if op < 0 {
		return isBit(*flags, f)
	}
	return setBit(flags, f, op == 1)
}

// setAdvertised is set_advertised_address/port: kept for the message (Kamailio's set_global_address/port);
// the value must fit Kamailio's buffer (128 / 8 bytes) and a port must be a number.
func setAdvertised(m *engine.Msg, v string, max int, port bool) int {
	if len(v) >= max {
		return -1
	}
	if port {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
			return -1
		}
		stateOf(m).advPort = v
		return 1
	}
	stateOf(m).advAddr = v
	return 1
}

// getDebug is Kamailio's debug level: 3 debug, 2 info, 0 warn, -1 error.
func getDebug(m *engine.Msg) int {
	var lv slog.Level
	if m != nil && m.E != nil {
		if v := m.E.LevelVar(); v != nil {
			lv = v.Level()
		}
	}
	switch {
	case lv <= slog.LevelDebug:
		return 3
	case lv <= slog.LevelInfo:
		return 2
	case lv <= slog.LevelWarn:
		return 0
	}
	return -1
}

// route is KSR.route(name): Kamailio runs the native route block of that name; a KEMI script has none, so
// siplua runs the script function of that name with the current message. 1 when it ran, -1 when there is
// no such function or it failed.
func (c *Core) route(m *engine.Msg, name string) int {
	if name == "" {
		return -1
	}
	if err := m.CallRoute(name); err != nil {
		c.logger().Warn("KSR.route failed", "route", name, "err", err)
		return -1
	}
	return 1
}

// nextHopURI is the URI a request goes to: $du, else the (rewritten) R-URI.
func nextHopURI(m *engine.Msg) string {
	if m.DstURI != "" {
		return m.DstURI
	}
	return m.RURI()
}

// toProto is the transport a message will be sent over, as Kamailio's to_proto helper: for a request the
// ;transport= of the next-hop URI ("" when the URI names none), for a reply the second Via's transport.
func toProto(m *engine.Msg) string {
	if m.IsReply() {
		vias := viaValues(m)
		if len(vias) < 2 {
			return ""
		}
		v, err := engine.ParseVia(vias[1])
		if err != nil {
			return ""
		}
		return strings.ToLower(v.Transport)
	}
	var u sip.Uri
	if err := sip.ParseUri(nextHopURI(m), &u); err != nil {
		return ""
	}
	if t, ok := u.UriParams.Get("transport"); ok {
		return strings.ToLower(t)
	}
	if u.Scheme == "sips" {
		return "tls"
	}
	return ""
}

// toAF is 4 or 6 when the next hop's host (a reply: the second Via's received or host) is an IP address
// of that family, else 0.
func toAF(m *engine.Msg) int {
	var host string
	if m.IsReply() {
		vias := viaValues(m)
		if len(vias) < 2 {
			return 0
		}
		v, err := engine.ParseVia(vias[1])
		if err != nil {
			return 0
		}
		host = v.Host
		if r, _ := viaParam(v.Params, "received"); r != "" {
			host = r
		}
	} else {
		var u sip.Uri
		if err := sip.ParseUri(nextHopURI(m), &u); err != nil {
			return 0
		}
		host = u.Host
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	switch {
	case err != nil:
		return 0
	case a.Is4():
		return 4
	}
	return 6
}

// viaValues splits the Via headers into single values, top first.
func viaValues(m *engine.Msg) []string {
	var out []string
	for _, h := range m.Headers("via") {
		for _, v := range rawsip.SplitValues(h) {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func viaParam(params, name string) (string, bool) {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// PVs: $snd(key) in the [kemi] onsend callback, Kamailio's names: ip, port, proto (1 UDP, 2 TCP), sproto,
// af (2 IPv4, 10 IPv6, the address family numbers Kamailio returns), buf, len, sndip / sndport (the local
// socket it leaves from). Null outside the callback.
func (c *Core) PVs() []engine.PV {
	return []engine.PV{{Name: "snd", Get: sndPV}}
}

func sndPV(m *engine.Msg, key string) engine.Value {
	s := m.SendInfo()
	if s == nil {
		return engine.Value{}
	}
	switch key {
	case "ip":
		return engine.StrVal(s.Dst.Addr().Unmap().String())
	case "port":
		return engine.IntVal(int64(s.Dst.Port()))
	case "proto":
		return engine.IntVal(int64(s.Proto))
	case "sproto":
		return engine.StrVal(s.Proto.String())
	case "af":
		if s.Dst.Addr().Unmap().Is4() {
			return engine.IntVal(2)
		}
		return engine.IntVal(10)
	case "buf":
		return engine.StrVal(string(s.Buf))
	case "len":
		return engine.IntVal(int64(len(s.Buf)))
	case "sndip":
		if s.Local != nil {
			return engine.StrVal(s.Local.Addr.Addr().Unmap().String())
		}
	case "sndport":
		if s.Local != nil {
			return engine.IntVal(int64(s.Local.Addr.Port()))
		}
	}
	return engine.Value{}
}
