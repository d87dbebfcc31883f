// Package kx is Kamailio's kemix module (KSR.kx.*): cheap getters of message attributes. get_* return a
// string or nil, gete_* "" instead of nil, getw_* "<null>" instead of nil; ports, lengths and the status
// are numbers.
package kx

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "kx", Builtin: true, New: func() engine.Instance { return &KX{} }})
}

// KX has no parameters.
type KX struct{}

type getter = func(*engine.Msg) (string, bool)

// Exports: KSR.kx.*.
func (*KX) Exports() []engine.Export {
	ex := []engine.Export{
		{Name: "get_method", Fn: func(m *engine.Msg) string { return m.Method() }},
		{Name: "get_ouri", Fn: origURI},
		{Name: "get_nhuri", Fn: nextHopURI},
		{Name: "get_srcip", Fn: func(m *engine.Msg) string { return addrString(m.Src.Addr()) }},
		{Name: "get_srcport", Fn: func(m *engine.Msg) int { return int(m.Src.Port()) }},
		{Name: "get_srcuri", Fn: srcURI},
		{Name: "get_srcaddr_sock", Fn: func(m *engine.Msg) (string, bool) {
			if !m.Src.IsValid() {
				return "", false
			}
			return m.Proto.String() + ":" + m.Src.String(), true
		}},
		{Name: "get_rcvip", Fn: rcvIP},
		{Name: "get_rcvport", Fn: rcvPort},
		{Name: "get_rcvaddr_sock", Fn: func(m *engine.Msg) (string, bool) {
			if m.Local == nil {
				return "", false
			}
			return m.Local.String(), true
		}},
		{Name: "get_proto", Fn: func(m *engine.Msg) string { return m.Proto.String() }},
		{Name: "get_protoid", Fn: func(m *engine.Msg) int { return int(m.Proto) }},
		{Name: "get_conid", Fn: func(m *engine.Msg) int { return m.ConnID() }},
		{Name: "get_callid", Fn: func(m *engine.Msg) (string, bool) { return m.Header("call-id") }},
		{Name: "get_status", Fn: func(m *engine.Msg) int {
			if !m.IsReply() {
				return -1
			}
			return m.StatusCode()
		}},
		{Name: "gets_status", Fn: func(m *engine.Msg) (string, bool) {
			if !m.IsReply() {
				return "", false
			}
			return strconv.Itoa(m.StatusCode()), true
		}},
		{Name: "get_msgtype", Fn: func(m *engine.Msg) int {
			if m.IsReply() {
				return 2
			}
			return 1
		}},
		{Name: "get_msglen", Fn: func(m *engine.Msg) int { return len(m.Buf) }},
		{Name: "get_msgbuf", Fn: func(m *engine.Msg) (string, bool) { return string(m.Buf), len(m.Buf) > 0 }},
		{Name: "get_bodylen", Fn: func(m *engine.Msg) int { return len(m.Body()) }},
		{Name: "get_timestamp", Fn: func(*engine.Msg) int { return int(time.Now().Unix()) }},
		{Name: "get_furi", Fn: addr("from", func(_, uri, _ string) string { return uri })},
		{Name: "get_turi", Fn: addr("to", func(_, uri, _ string) string { return uri })},
		{Name: "get_ruri", Fn: ruri},
	}
	// families with get_/gete_/getw_ variants, named as in kemix
	for _, g := range []struct {
		name string
		fn   getter
	}{
		{"ruser", ruriPart(func(u rawsip.URI) string { return u.User })},
		{"rhost", ruriPart(func(u rawsip.URI) string { return u.Host })},
		{"fuser", addrURI("from", func(u rawsip.URI) string { return u.User })},
		{"fhost", addrURI("from", func(u rawsip.URI) string { return u.Host })},
		{"tuser", addrURI("to", func(u rawsip.URI) string { return u.User })},
		{"thost", addrURI("to", func(u rawsip.URI) string { return u.Host })},
		{"ua", func(m *engine.Msg) (string, bool) { return m.Header("user-agent") }},
		{"duri", func(m *engine.Msg) (string, bool) { return nonEmpty(m.DstURI) }},
		{"cturi", contactURI},
		{"body", func(m *engine.Msg) (string, bool) { return nonEmpty(string(m.Body())) }},
	} {
		fn := g.fn
		ex = append(ex,
			engine.Export{Name: "get_" + g.name, Fn: fn},
			engine.Export{Name: "gete_" + g.name, Fn: func(m *engine.Msg) string { s, _ := fn(m); return s }},
			engine.Export{Name: "getw_" + g.name, Fn: func(m *engine.Msg) string {
				if s, ok := fn(m); ok {
					return s
				}
				return "<null>"
			}},
		)
	}
	return append(ex, moreExports()...) // more.go
}

func nonEmpty(s string) (string, bool) { return s, s != "" }

func ruri(m *engine.Msg) (string, bool) {
	if !m.IsRequest() {
		return "", false
	}
	return nonEmpty(m.RURI())
}

func origURI(m *engine.Msg) (string, bool) {
	if !m.IsRequest() {
		return "", false
	}
	if s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw); ok {
		return string(m.Buf[s:e]), true
	}
	return "", false
}

// nextHopURI is $du when set, else the current R-URI.
func nextHopURI(m *engine.Msg) (string, bool) {
	if m.DstURI != "" {
		return m.DstURI, true
	}
	return ruri(m)
}

func ruriPart(part func(rawsip.URI) string) getter {
	return func(m *engine.Msg) (string, bool) {
		s, ok := ruri(m)
		if !ok {
			return "", false
		}
		u, ok := rawsip.ParseURI(s)
		if !ok {
			return "", false
		}
		return nonEmpty(part(u))
	}
}

func addr(hname string, part func(display, uri, params string) string) getter {
	return func(m *engine.Msg) (string, bool) {
		v, ok := m.Header(hname)
		if !ok {
			return "", false
		}
		d, uri, params, ok := rawsip.NameAddr(v)
		if !ok {
			return "", false
		}
		return nonEmpty(part(d, uri, params))
	}
}

func addrURI(hname string, part func(rawsip.URI) string) getter {
	return addr(hname, func(_, uri, _ string) string {
		u, ok := rawsip.ParseURI(uri)
		if !ok {
			return ""
		}
		return part(u)
	})
}

// contactURI is the URI of the first Contact value ("*" included, as written).
// contactURI is kx.get_cturi as Kamailio computes it: null for "Contact: *"; else the head of the first
// Contact header's parsed list, which Kamailio's parser builds by prepending, so with several contacts in
// one header it is the last one written.
func contactURI(m *engine.Msg) (string, bool) {
	v, ok := m.Header("contact")
	if !ok {
		return "", false
	}
	if strings.TrimSpace(v) == "*" {
		return "", false
	}
	rest, last := []byte(v), ""
	for len(rest) > 0 {
		e := rawsip.FirstValueEnd(rest)
		if one := strings.TrimSpace(string(rest[:e])); one != "" {
			last = one
		}
		if e >= len(rest) {
			break
		}
		rest = rest[e+1:]
	}
	_, uri, _, ok := rawsip.NameAddr(last)
	if !ok {
		return "", false
	}
	return nonEmpty(uri)
}

func srcURI(m *engine.Msg) (string, bool) {
	if !m.Src.IsValid() {
		return "", false
	}
	s := "sip:" + m.Src.String()
	if m.Proto != engine.UDP {
		s += ";transport=" + m.Proto.String()
	}
	return s, true
}

func addrString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.Unmap().String()
}

func rcvIP(m *engine.Msg) string {
	if m.Local == nil {
		return ""
	}
	return addrString(m.Local.Addr.Addr())
}

func rcvPort(m *engine.Msg) int {
	if m.Local == nil {
		return 0
	}
	return int(m.Local.Addr.Port())
}
