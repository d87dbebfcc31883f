package pv

import (
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// PVs lists the variables this module provides. Types follow Kamailio 5.6 as seen from app_lua: ports of
// sockets ($sp, $Rp), lengths and status codes are numbers; $rp and $cs are strings; a missing part is null.
func (p *PV) PVs() []engine.PV {
	return append(p.moreVars(), []engine.PV{
		{Name: "ru", Get: getRURI, Set: setRURI},
		{Name: "rU", Get: ruriPart(ruriUser), Set: setRURIPart(rawsip.URIUser, setUser)},
		{Name: "rd", Get: ruriPart(func(u rawsip.URI) string { return u.Host }), Set: setRURIPart(rawsip.URIHost, setHost)},
		{Name: "rp", Get: getRURIPort, Set: setRURIPart(rawsip.URIPort, setPort)},
		{Name: "rz", Get: ruriPart(uriScheme)},
		{Name: "ou", Get: getOrigURI},
		{Name: "du", Get: func(m *engine.Msg, _ string) engine.Value { return strOrNull(m.DstURI) }, Set: setDstURI},
		{Name: "fu", Get: addrPart("from", func(_, uri, _ string) string { return uri }), Set: setAddrURI("from")},
		{Name: "fU", Get: addrURIPart("from", func(u rawsip.URI) string { return u.User }), Set: setAddrURIPart("from", setUser)},
		{Name: "fd", Get: addrURIPart("from", func(u rawsip.URI) string { return u.Host }), Set: setAddrURIPart("from", setHost)},
		{Name: "fn", Get: addrPart("from", func(d, _, _ string) string { return d }), Set: setAddrDisplay("from")},
		{Name: "ft", Get: addrPart("from", tagParam)},
		{Name: "tu", Get: addrPart("to", func(_, uri, _ string) string { return uri }), Set: setAddrURI("to")},
		{Name: "tU", Get: addrURIPart("to", func(u rawsip.URI) string { return u.User }), Set: setAddrURIPart("to", setUser)},
		{Name: "td", Get: addrURIPart("to", func(u rawsip.URI) string { return u.Host }), Set: setAddrURIPart("to", setHost)},
		{Name: "tn", Get: addrPart("to", func(d, _, _ string) string { return d }), Set: setAddrDisplay("to")},
		{Name: "tt", Get: addrPart("to", tagParam)},
		{Name: "ci", Get: header("call-id")},
		{Name: "cs", Get: getCSeqNum},
		{Name: "rm", Get: func(m *engine.Msg, _ string) engine.Value { return strOrNull(m.Method()) }},
		{Name: "rs", Get: getStatus},
		{Name: "rr", Get: getReason},
		{Name: "si", Get: getSrcIP},
		{Name: "sp", Get: getSrcPort},
		{Name: "Ri", Get: getRcvIP},
		{Name: "Rp", Get: getRcvPort},
		{Name: "pr", Get: getProto},
		{Name: "proto", Get: getProto},
		{Name: "conid", Get: getConID},
		{Name: "ua", Get: header("user-agent")},
		{Name: "ct", Get: header("contact")},
		{Name: "cT", Get: header("content-type")},
		{Name: "cl", Get: getContentLength},
		{Name: "ml", Get: func(m *engine.Msg, _ string) engine.Value { return engine.IntVal(int64(len(m.Buf))) }},
		{Name: "mb", Get: func(m *engine.Msg, _ string) engine.Value { return engine.StrVal(string(m.Buf)) }},
		{Name: "rb", Get: func(m *engine.Msg, _ string) engine.Value { return engine.StrVal(string(m.Body())) }},
		{Name: "mf", Get: func(m *engine.Msg, _ string) engine.Value { return engine.IntVal(int64(m.Flags)) }},
		{Name: "bf", Get: func(m *engine.Msg, _ string) engine.Value { return engine.IntVal(int64(m.BFlags)) }},
		{Name: "TS", Get: func(*engine.Msg, string) engine.Value { return engine.IntVal(time.Now().Unix()) }},
		{Name: "hdr", Get: getHdr},
		{Name: "hdrc", Get: func(m *engine.Msg, name string) engine.Value {
			return engine.IntVal(int64(len(m.Headers(name))))
		}},
		{Name: "var", Get: getVar, Set: setVar},
		{Name: "avp", Get: getAVP, Set: setAVP},
		{Name: "shv", Get: p.getShv, Set: p.setShv},
	}...)
}

func strOrNull(s string) engine.Value {
	if s == "" {
		return engine.Value{}
	}
	return engine.StrVal(s)
}

func header(name string) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		if v, ok := m.Header(name); ok {
			return engine.StrVal(v)
		}
		return engine.Value{}
	}
}

// getHdr is $hdr(Name): the first header's body, "" for an empty one, null when absent.
func getHdr(m *engine.Msg, name string) engine.Value {
	if name == "" {
		return engine.Value{}
	}
	return header(name)(m, "")
}

func getCSeqNum(m *engine.Msg, _ string) engine.Value {
	v, ok := m.Header("cseq")
	if !ok {
		return engine.Value{}
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t"); i >= 0 { // SP or HTAB between number and method (RFC 3261 LWS)
		v = v[:i]
	}
	return strOrNull(v)
}

// uriScheme is $rz: the scheme in lower case; a sip:/sips: URI with user=phone is "tel"/"tels", as
// Kamailio's parse_uri makes it (phone2tel).
func uriScheme(u rawsip.URI) string {
	s := strings.ToLower(u.Scheme)
	if user, _, _, ok := rawsip.Param(u.Params, "user"); ok && strings.EqualFold(user, "phone") {
		switch s {
		case "sip":
			return "tel"
		case "sips":
			return "tels"
		}
	}
	return s
}

func getStatus(m *engine.Msg, _ string) engine.Value {
	if !m.IsReply() {
		return engine.Value{}
	}
	return engine.IntVal(int64(m.StatusCode()))
}

func getReason(m *engine.Msg, _ string) engine.Value {
	if !m.IsReply() {
		return engine.Value{}
	}
	return engine.StrVal(m.Reason())
}

func getSrcIP(m *engine.Msg, _ string) engine.Value {
	if !m.Src.IsValid() {
		return engine.Value{}
	}
	return engine.StrVal(m.Src.Addr().Unmap().String())
}

func getSrcPort(m *engine.Msg, _ string) engine.Value {
	if !m.Src.IsValid() {
		return engine.Value{}
	}
	return engine.IntVal(int64(m.Src.Port()))
}

func getRcvIP(m *engine.Msg, _ string) engine.Value {
	if m.Local == nil {
		return engine.Value{}
	}
	return engine.StrVal(m.Local.Addr.Addr().Unmap().String())
}

func getRcvPort(m *engine.Msg, _ string) engine.Value {
	if m.Local == nil {
		return engine.Value{}
	}
	return engine.IntVal(int64(m.Local.Addr.Port()))
}

// getConID is $conid: the stream connection's id, $null for UDP.
func getConID(m *engine.Msg, _ string) engine.Value {
	if id := m.ConnID(); id >= 0 {
		return engine.IntVal(int64(id))
	}
	return engine.Value{}
}

func getProto(m *engine.Msg, _ string) engine.Value {
	if m.Proto == engine.ProtoNone {
		return engine.Value{}
	}
	return engine.StrVal(m.Proto.String())
}

// getContentLength is $cl: the Content-Length value; null when the header is missing, as in Kamailio.
func getContentLength(m *engine.Msg, _ string) engine.Value {
	if v, ok := m.Header("content-length"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return engine.IntVal(int64(n))
		}
	}
	return engine.Value{}
}

// addrPart reads a part of a name-addr header (From, To); an empty part is null.
func addrPart(hname string, part func(display, uri, params string) string) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		v, ok := m.Header(hname)
		if !ok {
			return engine.Value{}
		}
		d, uri, params, ok := rawsip.NameAddr(v)
		if !ok {
			return engine.Value{}
		}
		return strOrNull(part(d, uri, params))
	}
}

func addrURIPart(hname string, part func(rawsip.URI) string) func(*engine.Msg, string) engine.Value {
	return addrPart(hname, func(_, uri, _ string) string {
		u, ok := rawsip.ParseURI(uri)
		if !ok {
			return ""
		}
		return part(u)
	})
}

func tagParam(_, _, params string) string {
	tag, _, _, _ := rawsip.Param(params, "tag")
	return tag
}
