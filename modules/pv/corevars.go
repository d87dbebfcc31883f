package pv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// moreVars are the core variables added for scripts written for Kamailio (issue 12 item 9): types follow
// Kamailio's getters (pv_get_uintval/sintval give a Lua number; pv_get_strintval a string).
func (p *PV) moreVars() []engine.PV {
	return []engine.PV{
		{Name: "mt", Get: func(m *engine.Msg, _ string) engine.Value {
			switch {
			case m.IsReply():
				return engine.IntVal(2)
			case m.IsRequest():
				return engine.IntVal(1)
			}
			return engine.IntVal(0)
		}},
		{Name: "rv", Get: getVersion},
		{Name: "retcode", Get: getRetcode},
		{Name: "rc", Get: getRetcode},
		{Name: "via0", Get: viaAttr(0)},
		{Name: "via1", Get: viaAttr(1)},
		{Name: "hfl", Get: func(m *engine.Msg, name string) engine.Value {
			if vs := hflValues(m, name); len(vs) > 0 {
				return vs[0]
			}
			return engine.Value{}
		}},
		{Name: "hflc", Get: func(m *engine.Msg, name string) engine.Value {
			return engine.IntVal(int64(len(hflValues(m, name))))
		}},
		{Name: "nh", Get: getNextHop},
		{Name: "msg", Get: getMsgAttr},
		{Name: "dd", Get: dstPart(func(u rawsip.URI) engine.Value { return strOrNull(u.Host) })},
		{Name: "dp", Get: dstPart(uriPortStr)},
		{Name: "dP", Get: dstPart(uriProtoStr)},
		{Name: "rP", Get: func(m *engine.Msg, _ string) engine.Value {
			u, ok := currentRURI(m)
			if !ok {
				return engine.Value{}
			}
			return uriProtoStr(u)
		}},
		{Name: "od", Get: origPart(func(u rawsip.URI) engine.Value { return strOrNull(u.Host) })},
		{Name: "oU", Get: origPart(func(u rawsip.URI) engine.Value { return strOrNull(u.User) })},
		{Name: "op", Get: origPart(uriPortStr)},
		{Name: "br", Get: func(m *engine.Msg, _ string) engine.Value {
			if m.IsReply() || len(m.Branches) == 0 {
				return engine.Value{}
			}
			return engine.StrVal(m.Branches[0].URI)
		}},
		{Name: "bR", Get: getBranches},
		{Name: "mF", Get: func(m *engine.Msg, _ string) engine.Value { return hex8(m.Flags) },
			Set: setFlags(func(m *engine.Msg) *uint64 { return &m.Flags })},
		{Name: "bF", Get: func(m *engine.Msg, _ string) engine.Value { return hex8(m.BFlags) },
			Set: setFlags(func(m *engine.Msg) *uint64 { return &m.BFlags })},
		{Name: "sf", Get: func(m *engine.Msg, _ string) engine.Value { return engine.IntVal(int64(scriptFlags(m))) }},
		{Name: "sF", Get: func(m *engine.Msg, _ string) engine.Value { return hex8(scriptFlags(m)) }},
		{Name: "su", Get: getSrcURI},
		{Name: "Ru", Get: getRcvURI},
		{Name: "RAi", Get: getRcvIP},
		{Name: "fti", Get: func(m *engine.Msg, _ string) engine.Value { return initialTag(m, true) }},
		{Name: "tti", Get: func(m *engine.Msg, _ string) engine.Value { return initialTag(m, false) }},
		{Name: "ai", Get: addrHeaderURI("p-asserted-identity")},
		{Name: "pu", Get: addrHeaderURI("p-preferred-identity")},
		{Name: "re", Get: addrHeaderURI("remote-party-id")},
		{Name: "di", Get: addrHeaderURI("diversion")},
		{Name: "au", Get: authAttr("username")},
		{Name: "ar", Get: authAttr("realm")},
		{Name: "adu", Get: authAttr("uri")},
		{Name: "xavp", Get: xavpGetter(kindXavp), Set: xavpSetter(kindXavp)},
		{Name: "xavu", Get: xavpGetter(kindXavu), Set: xavpSetter(kindXavu)},
		{Name: "xavi", Get: xavpGetter(kindXavi), Set: xavpSetter(kindXavi)},
		{Name: "sbranch", Get: getSbranch, Set: setSbranch},
	}
}

func getVersion(m *engine.Msg, _ string) engine.Value {
	if len(m.Buf) == 0 {
		return engine.Value{}
	}
	line := string(m.Buf[:m.Raw.FirstLineEnd])
	line = strings.TrimRight(line, "\r\n")
	if m.IsReply() {
		v, _, _ := strings.Cut(line, " ")
		return engine.StrVal(v)
	}
	if i := strings.LastIndexByte(line, ' '); i >= 0 {
		return engine.StrVal(line[i+1:])
	}
	return engine.Value{}
}

// getRetcode is $retcode/$rc: Kamailio's last return code of a native config action. KEMI function calls
// do not set it, so a KEMI script reads 0, as Kamailio 5.6 gives it.
func getRetcode(*engine.Msg, string) engine.Value { return engine.IntVal(0) }

// viaBodies returns the Via values in order, each comma-separated one apart.
func viaBodies(m *engine.Msg) []string {
	var out []string
	for _, h := range m.Headers("via") {
		out = append(out, splitComma(h)...)
	}
	return out
}

// splitComma splits a header value at commas outside quotes and <...>, each part trimmed.
func splitComma(v string) []string {
	parts := rawsip.SplitValues(v)
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// viaAttr is $via0(attr) and $via1(attr): parts of the first or second Via body.
func viaAttr(n int) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, attr string) engine.Value {
		vias := viaBodies(m)
		if n >= len(vias) {
			return engine.Value{}
		}
		v := vias[n]
		proto, rest, _ := strings.Cut(v, " ")
		rest = strings.TrimSpace(rest)
		sentBy, params, _ := strings.Cut(rest, ";")
		if params != "" {
			params = ";" + params
		}
		sentBy = strings.TrimSpace(sentBy)
		host, port := sentBy, ""
		if strings.HasPrefix(host, "[") {
			if e := strings.IndexByte(host, ']'); e > 0 {
				host, port = sentBy[:e+1], strings.TrimPrefix(sentBy[e+1:], ":")
			}
		} else if c := strings.LastIndexByte(host, ':'); c >= 0 {
			host, port = sentBy[:c], sentBy[c+1:]
		}
		param := func(name string) engine.Value {
			val, _, _, ok := rawsip.Param(params, name)
			if !ok || val == "" {
				return engine.Value{}
			}
			return engine.StrVal(val)
		}
		switch attr {
		case "host":
			return strOrNull(host)
		case "port":
			if pn, err := strconv.Atoi(port); err == nil {
				return engine.IntVal(int64(pn))
			}
			return engine.IntVal(5060)
		case "proto":
			parts := strings.Split(proto, "/")
			return engine.StrVal(strings.TrimSpace(parts[len(parts)-1]))
		case "protoid":
			parts := strings.Split(proto, "/")
			return engine.IntVal(int64(protoID(strings.TrimSpace(parts[len(parts)-1]))))
		case "branch":
			return param("branch")
		case "rport":
			return param("rport")
		case "received":
			return param("received")
		case "i":
			return param("i")
		}
		return engine.Value{}
	}
}

// protoID is Kamailio's enum sip_protos.
func protoID(t string) int {
	switch strings.ToUpper(t) {
	case "UDP":
		return 1
	case "TCP":
		return 2
	case "TLS":
		return 3
	case "SCTP":
		return 4
	case "WS":
		return 5
	case "WSS":
		return 6
	}
	return 0
}

// hflSplits tells the headers whose bodies $hfl takes one by one.
func hflSplits(name string) bool {
	switch engine.HeaderName(name) {
	case "via", "route", "record-route", "contact":
		return true
	}
	return false
}

// hflBodies lists the bodies as Kamailio's parsers give them: a Via body that is followed by another in
// the same header keeps its trailing comma (the parser's body size covers it), and the contacts of one
// Contact header come last first (the parser prepends them).
func hflBodies(m *engine.Msg, name string) []string {
	var out []string
	lname := engine.HeaderName(name)
	for _, h := range m.Headers(name) {
		parts := splitComma(h)
		switch lname {
		case "via":
			for i := range parts[:len(parts)-1] {
				parts[i] += ","
			}
		case "contact":
			for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
		out = append(out, parts...)
	}
	return out
}

// hflValues is $hfl(name) read without an index (and $hflc's count): for Via, Route, Record-Route and
// Contact the bodies, for other headers each header's value, as $hdr.
func hflValues(m *engine.Msg, name string) []engine.Value {
	if hflSplits(name) {
		return strVals(hflBodies(m, name))
	}
	return strVals(m.Headers(name))
}

// hflIndexed is $(hfl(name)[n]) for the split headers. A negative index counts from one past the end,
// as Kamailio 5.6 does (its count starts at 1): [-1] is null and [-2] the last body.
func hflIndexed(m *engine.Msg, name string, n int) engine.Value {
	bodies := hflBodies(m, name)
	if n < 0 {
		n += len(bodies) + 1
	}
	if n < 0 || n >= len(bodies) {
		return engine.Value{}
	}
	return engine.StrVal(bodies[n])
}

// getNextHop is $nh(u|U|d|p|P): the destination URI when set, the Request-URI otherwise.
func getNextHop(m *engine.Msg, attr string) engine.Value {
	if m.IsReply() {
		return engine.Value{}
	}
	s := m.DstURI
	if s == "" {
		s = m.RURI()
	}
	u, ok := rawsip.ParseURI(s)
	if !ok {
		return engine.Value{}
	}
	switch attr {
	case "u":
		return engine.StrVal(s)
	case "U":
		return strOrNull(u.User)
	case "d":
		return strOrNull(u.Host)
	case "p": // the port as written, "5060" otherwise (no 5061 for TLS, unlike $dp)
		if u.Port != "" {
			return engine.StrVal(u.Port)
		}
		return engine.StrVal("5060")
	case "P":
		return uriProtoStr(u)
	}
	return engine.Value{}
}

// getMsgAttr is $msg(len|buf|body|body_len|hdrs|fline|hdrc|fpart|lpart|hdrs_len).
func getMsgAttr(m *engine.Msg, attr string) engine.Value {
	if len(m.Buf) == 0 {
		return engine.Value{}
	}
	fl := m.Raw.FirstLineEnd
	bodyStart := m.Raw.Body
	if bodyStart > len(m.Buf) {
		bodyStart = len(m.Buf)
	}
	hdrs := strings.TrimSpace(string(m.Buf[fl:bodyStart]))
	switch attr {
	case "len":
		return engine.IntVal(int64(len(m.Buf)))
	case "buf":
		return engine.StrVal(string(m.Buf))
	case "body":
		return engine.StrVal(string(m.Body()))
	case "body_len":
		return engine.IntVal(int64(len(m.Body())))
	case "hdrs":
		return engine.StrVal(hdrs)
	case "hdrs_len":
		return engine.IntVal(int64(len(hdrs)))
	case "fline":
		return engine.StrVal(strings.TrimSpace(string(m.Buf[:fl])))
	case "hdrc":
		return engine.IntVal(int64(len(m.Raw.Hdrs)))
	case "fpart":
		return engine.StrVal(strings.TrimSpace(string(m.Buf[:bodyStart])))
	case "lpart":
		if len(m.Raw.Hdrs) == 0 {
			return engine.Value{}
		}
		return engine.StrVal(string(m.Buf[m.Raw.Hdrs[0].Start:]))
	}
	return engine.Value{}
}

// uriPortStr is Kamailio's port attribute: the port as written, "5060" ("5061" for TLS) when none; a
// string in Lua (pv_get_strintval).
func uriPortStr(u rawsip.URI) engine.Value {
	if u.Port != "" {
		return engine.StrVal(u.Port)
	}
	if t, _, _, _ := rawsip.Param(u.Params, "transport"); strings.EqualFold(t, "tls") || strings.EqualFold(u.Scheme, "sips") {
		return engine.StrVal("5061")
	}
	return engine.StrVal("5060")
}

// uriProtoStr is the transport parameter as written, "UDP" when none.
func uriProtoStr(u rawsip.URI) engine.Value {
	if t, _, _, ok := rawsip.Param(u.Params, "transport"); ok && t != "" {
		return engine.StrVal(t)
	}
	return engine.StrVal("UDP")
}

func dstPart(part func(rawsip.URI) engine.Value) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		if m.DstURI == "" {
			return engine.Value{}
		}
		u, ok := rawsip.ParseURI(m.DstURI)
		if !ok {
			return engine.Value{}
		}
		return part(u)
	}
}

func origPart(part func(rawsip.URI) engine.Value) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		v := getOrigURI(m, "")
		if v.Kind != engine.Str {
			return engine.Value{}
		}
		u, ok := rawsip.ParseURI(v.S)
		if !ok {
			return engine.Value{}
		}
		return part(u)
	}
}

// getBranches is $bR: the additional branches' URIs, ", "-separated, with "<uri>;q=0.5" when a q is set.
func getBranches(m *engine.Msg, _ string) engine.Value {
	if m.IsReply() || len(m.Branches) == 0 {
		return engine.Value{}
	}
	var b strings.Builder
	for i, br := range m.Branches {
		if i > 0 {
			b.WriteString(", ")
		}
		if br.Q >= 0 {
			fmt.Fprintf(&b, "<%s>;q=%s", br.URI, qString(br.Q))
			continue
		}
		b.WriteString(br.URI)
	}
	return engine.StrVal(b.String())
}

// qString prints q×1000 as Kamailio's q2str: "1", "0.5", "0.25".
func qString(q int) string {
	if q >= 1000 {
		return "1"
	}
	s := strings.TrimRight(fmt.Sprintf("0.%03d", q), "0")
	if s == "0." {
		return "0"
	}
	return s
}

var errNeedInt = errors.New("an integer value is required")

// setFlags assigns $mF/$bF: an integer replaces the 32 flags, as Kamailio's pv_set_mflags/bflags.
func setFlags(field func(*engine.Msg) *uint64) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, _ string, v engine.Value) error {
		if v.Kind != engine.Int {
			return errNeedInt
		}
		*field(m) = uint64(uint32(v.I))
		return nil
	}
}

// hex8 is Kamailio's int_to_8hex: 8 lower-case hex digits, a string in Lua.
func hex8(v uint64) engine.Value { return engine.StrVal(fmt.Sprintf("%08x", uint32(v))) }

// scriptFlags are Kamailio's script flags (KSR.setsflag).
func scriptFlags(m *engine.Msg) uint64 { return m.SFlags }

func getSrcURI(m *engine.Msg, _ string) engine.Value {
	if !m.Src.IsValid() {
		return engine.Value{}
	}
	return engine.StrVal(sockURI(m.Src.Addr().Unmap().String(), int(m.Src.Port()), m.Proto))
}

func getRcvURI(m *engine.Msg, _ string) engine.Value {
	if m.Local == nil {
		return engine.Value{}
	}
	return engine.StrVal(sockURI(m.Local.Addr.Addr().Unmap().String(), int(m.Local.Addr.Port()), m.Proto))
}

// sockURI builds "sip:ip:port" with ";transport=x" for other protocols than UDP, IPv6 in brackets.
func sockURI(ip string, port int, proto engine.Proto) string {
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	s := "sip:" + ip + ":" + strconv.Itoa(port)
	if proto != engine.UDP && proto != engine.ProtoNone {
		s += ";transport=" + strings.ToLower(proto.String())
	}
	return s
}

// initialTag is $fti/$tti (Kamailio's rr module): the From/To tag as in the initial request, swapped for a
// request going upstream: rr's direction after loose_route ($rdir), or before it, as Kamailio's
// redo_route_params, the ftag of the top Route differing from the From tag.
func initialTag(m *engine.Msg, from bool) engine.Value {
	ft := addrPart("from", tagParam)(m, "")
	upstream := false
	if m.E != nil {
		if dir, ok := m.E.LookupPV("rdir"); ok && dir.Get != nil {
			upstream = dir.Get(m, "id") == engine.IntVal(2)
		}
	}
	if r, ok := m.Header("route"); ok && !upstream && m.IsRequest() && ft.Kind == engine.Str {
		if _, uri, _, ok := rawsip.NameAddr(splitComma(r)[0]); ok {
			if u, ok := rawsip.ParseURI(uri); ok {
				ftag, _, _, ok := rawsip.Param(u.Params, "ftag")
				upstream = ok && ftag != "" && ftag != ft.S
			}
		}
	}
	if from != upstream {
		return ft
	}
	return addrPart("to", tagParam)(m, "")
}

// addrHeaderURI is the URI of the first body of a name-addr header (P-Asserted-Identity, Diversion ...).
func addrHeaderURI(name string) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		v, ok := m.Header(name)
		if !ok {
			return engine.Value{}
		}
		_, uri, _, ok := rawsip.NameAddr(splitComma(v)[0])
		if !ok {
			return engine.Value{}
		}
		return strOrNull(uri)
	}
}

// authAttr reads a digest parameter of the Proxy-Authorization (first) or Authorization header; $au is
// the user part of the username. ACK and CANCEL carry no credentials for Kamailio.
func authAttr(param string) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		if meth := m.Method(); m.IsReply() || meth == "ACK" || meth == "CANCEL" {
			return engine.Value{}
		}
		h, ok := m.Header("proxy-authorization")
		if !ok {
			if h, ok = m.Header("authorization"); !ok {
				return engine.Value{}
			}
		}
		scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "digest") {
			return engine.Value{}
		}
		for _, kv := range splitComma(rest) {
			k, v, _ := strings.Cut(kv, "=")
			if !strings.EqualFold(strings.TrimSpace(k), param) {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), "\"")
			if param == "username" {
				if at := strings.IndexByte(v, '@'); at >= 0 {
					v = v[:at]
				}
			}
			if param == "uri" && v == "" {
				return engine.Value{}
			}
			return engine.StrVal(v)
		}
		if param == "uri" {
			return engine.Value{}
		}
		return engine.StrVal("")
	}
}
