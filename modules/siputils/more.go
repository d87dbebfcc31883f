package siputils

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// The rest of Kamailio 5.6's siputils KEMI functions, with its return codes: 1 true; -1 false; -2 / -3 for
// the string checks (empty, bad character) as Kamailio's is_numeric & co.

func moreExports() []engine.Export {
	return []engine.Export{
		{Name: "is_uri", Fn: func(m *engine.Msg, s string) int { _, ok := parseSIPURI(s); return b2i(ok) }},
		{Name: "is_user", Fn: isUser},
		{Name: "uri_param", Fn: func(m *engine.Msg, name string) int { return uriParamValue(m, name, nil) }},
		{Name: "uri_param_value", Fn: func(m *engine.Msg, name, val string) int { return uriParamValue(m, name, &val) }},
		{Name: "uri_param_any", Fn: uriParamAny},
		{Name: "uri_param_rm", Fn: uriParamRm},
		{Name: "add_uri_param", Fn: addURIParam},
		{Name: "is_tel_number", Fn: isTelNumber},
		{Name: "is_numeric", Fn: isNumeric},
		{Name: "is_alphanum", Fn: func(m *engine.Msg, s string) int { return isAlphanumEx(m, s, "") }},
		{Name: "is_alphanumex", Fn: isAlphanumEx},
		{Name: "options_reply", Fn: optionsReply},
		{Name: "cmp_uri", Fn: func(m *engine.Msg, a, b string) int { return cmpResult(cmpURI(a, b, false)) }},
		{Name: "cmp_aor", Fn: func(m *engine.Msg, a, b string) int { return cmpResult(cmpURI(a, b, true)) }},
		{Name: "cmp_hdr_name", Fn: func(m *engine.Msg, a, b string) int {
			return b2i(engine.HeaderName(strings.TrimSpace(a)) == engine.HeaderName(strings.TrimSpace(b)))
		}},
		{Name: "is_gruu", Fn: isGRUU},
		{Name: "is_first_hop_mode", Fn: func(m *engine.Msg, mode int) int { return isFirstHop(m) }},
		{Name: "hdr_date_check", Fn: hdrDateCheck},
		{Name: "contact_param_encode", Fn: contactParamEncode},
		{Name: "contact_param_decode", Fn: contactParamDecode},
		{Name: "contact_param_decode_ruri", Fn: contactParamDecodeRURI},
		{Name: "contact_param_rm", Fn: contactParamRm},
		{Name: "encode_contact", Fn: encodeContact},
		{Name: "decode_contact", Fn: decodeContact},
		{Name: "decode_contact_header", Fn: decodeContactHeader},
	}
}

func parseSIPURI(s string) (rawsip.URI, bool) {
	u, ok := rawsip.ParseURI(strings.TrimSpace(s))
	if !ok || (u.Scheme != "sip" && u.Scheme != "sips" && u.Scheme != "tel" && u.Scheme != "tels") {
		return rawsip.URI{}, false
	}
	if (u.Scheme == "sip" || u.Scheme == "sips") && u.Host == "" {
		return rawsip.URI{}, false
	}
	if u.Port != "" {
		if p, err := strconv.Atoi(u.Port); err != nil || p > 65535 {
			return rawsip.URI{}, false
		}
	}
	return u, true
}

// isUser is is_user(name): 1 when the Authorization (else Proxy-Authorization) username is name.
func isUser(m *engine.Msg, name string) int {
	for _, h := range []string{"authorization", "proxy-authorization"} {
		if v, ok := m.Header(h); ok {
			u, ok := authParam(v, "username")
			if !ok || u == "" {
				return -1
			}
			if at := strings.IndexByte(u, '@'); at >= 0 {
				u = u[:at]
			}
			return b2i(u == name)
		}
	}
	return -1
}

func authParam(v, name string) (string, bool) {
	v = strings.TrimSpace(v)
	if sp := strings.IndexAny(v, " \t"); sp >= 0 {
		v = v[sp+1:]
	}
	for _, p := range rawsip.SplitValues(v) {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.Trim(strings.TrimSpace(val), `"`), true
		}
	}
	return "", false
}

// params splits ";a=1;b" into name/value pairs (value "" when none).
func params(s string) [][2]string {
	var out [][2]string
	for _, p := range strings.Split(strings.TrimPrefix(s, ";"), ";") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

// uriParamValue is uri_param(name[, value]): the R-URI has parameter name (case-sensitive, as Kamailio)
// without a value, or with exactly value. For a user=phone R-URI, Kamailio looks at the parameters of the
// user part (sip:+49301;npdi@host;user=phone), and so does this.
func uriParamValue(m *engine.Msg, name string, val *string) int {
	u, ok := parseSIPURI(m.RURI())
	if !ok || !m.IsRequest() {
		return -1
	}
	ps := u.Params
	for _, p := range params(u.Params) {
		if strings.EqualFold(p[0], "user") && strings.EqualFold(p[1], "phone") {
			// Kamailio parses a user=phone URI as a tel URI: its parameters are those of the user part
			ps = ""
			if semi := strings.IndexByte(u.User, ';'); semi >= 0 {
				ps = u.User[semi:]
			}
			break
		}
	}
	for _, p := range params(ps) {
		if p[0] != name {
			continue
		}
		if val == nil {
			return b2i(p[1] == "")
		}
		return b2i(p[1] == *val)
	}
	return -1
}

// uriParamAny is uri_param_any(name): the R-URI has parameter name (any case), with or without a value.
func uriParamAny(m *engine.Msg, name string) int {
	u, ok := parseSIPURI(m.RURI())
	if !ok || !m.IsRequest() {
		return -1
	}
	for _, p := range params(u.Params) {
		if strings.EqualFold(p[0], name) {
			return 1
		}
	}
	return -1
}

// uriParamRm is uri_param_rm(name): the parameter goes from the R-URI (1 also when it was not there).
func uriParamRm(m *engine.Msg, name string) int {
	if !m.IsRequest() {
		return -1
	}
	u, ok := parseSIPURI(m.RURI())
	if !ok {
		return -1
	}
	var kept []string
	found := false
	for _, p := range params(u.Params) {
		if strings.EqualFold(p[0], name) && !found {
			found = true
			continue
		}
		if p[1] != "" {
			kept = append(kept, p[0]+"="+p[1])
		} else {
			kept = append(kept, p[0])
		}
	}
	if !found {
		return 1
	}
	u.Params = ""
	if len(kept) > 0 {
		u.Params = ";" + strings.Join(kept, ";")
	}
	m.NewURI = uriString(u)
	return 1
}

func uriString(u rawsip.URI) string {
	var b strings.Builder
	b.WriteString(u.Scheme + ":")
	if u.User != "" || u.HasPass {
		b.WriteString(u.User)
		if u.HasPass {
			b.WriteString(":" + u.Password)
		}
		b.WriteByte('@')
	}
	b.WriteString(u.Host)
	if u.Port != "" {
		b.WriteString(":" + u.Port)
	}
	b.WriteString(u.Params + u.Headers)
	return b.String()
}

// addURIParam is add_uri_param(param): ";param" appended to the R-URI's parameters.
func addURIParam(m *engine.Msg, p string) int {
	if p == "" {
		return 1
	}
	if !m.IsRequest() {
		return -1
	}
	u, ok := parseSIPURI(m.RURI())
	if !ok {
		return -1
	}
	u.Params += ";" + p
	m.NewURI = uriString(u)
	return 1
}

func isTelNumber(m *engine.Msg, s string) int {
	if s == "" {
		return -2
	}
	i := 0
	if s[0] == '+' {
		if len(s) < 2 || s[1] < '1' || s[1] > '9' {
			return -2
		}
		i = 2
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -2
		}
	}
	return 1
}

func isNumeric(m *engine.Msg, s string) int {
	if s == "" {
		return -2
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -2
		}
	}
	return 1
}

func isAlphanumEx(m *engine.Msg, s, extra string) int {
	if s == "" {
		return -2
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(extra, c) >= 0 {
			continue
		}
		return -3
	}
	return 1
}

// optionsReply is options_reply: an OPTIONS to the proxy (no user in the R-URI) gets 200 with Kamailio
// siputils' default Accept, Accept-Encoding, Accept-Language and Supported; -1 for anything else.
func optionsReply(m *engine.Msg) int {
	if m.Method() != "OPTIONS" {
		return -1
	}
	u, ok := parseSIPURI(m.RURI())
	if !ok || u.User != "" {
		return -1
	}
	prev := len(m.ReplyHdrs)
	m.ReplyHdrs = append(m.ReplyHdrs, "Accept: */*\r\nAccept-Encoding: \r\nAccept-Language: en\r\nSupported: \r\n"...)
	err := m.SendReply(200, "OK")
	m.ReplyHdrs = m.ReplyHdrs[:prev]
	if err != nil {
		return -1
	}
	return 1
}

// cmpURI compares two URIs as Kamailio's cmp_uri_str (user and password case-sensitive, host
// case-insensitive, the port as written: a URI without one differs from one with ":5060", RFC 3261
// §19.1.4; user, ttl, method and maddr parameters must match when either URI has them, other parameters
// when both have them) or, for aor, as cmp_aor_str (user, host, port with 5060 for none). 0 equal, 1
// different, -1 not parseable.
func cmpURI(a, b string, aor bool) int {
	ua, ok1 := parseSIPURI(a)
	ub, ok2 := parseSIPURI(b)
	if !ok1 || !ok2 {
		return -1
	}
	port := func(u rawsip.URI) string {
		if u.Port == "" && aor {
			if u.Scheme == "sips" {
				return "5061"
			}
			return "5060"
		}
		return u.Port
	}
	if ua.User != ub.User || !strings.EqualFold(ua.Host, ub.Host) || port(ua) != port(ub) {
		return 1
	}
	if aor {
		return 0
	}
	if ua.Password != ub.Password {
		return 1
	}
	pa, pb := map[string]string{}, map[string]string{}
	for _, p := range params(ua.Params) {
		pa[strings.ToLower(p[0])] = p[1]
	}
	for _, p := range params(ub.Params) {
		pb[strings.ToLower(p[0])] = p[1]
	}
	for _, k := range []string{"user", "ttl", "method", "maddr"} {
		va, ina := pa[k]
		vb, inb := pb[k]
		if ina != inb || !strings.EqualFold(va, vb) {
			return 1
		}
	}
	for k, va := range pa {
		if vb, ok := pb[k]; ok && !strings.EqualFold(va, vb) {
			return 1
		}
	}
	return 0
}

func cmpResult(r int) int {
	switch r {
	case 0:
		return 1
	case 1:
		return -1
	}
	return -2
}

// isGRUU is is_gruu: the R-URI is a GRUU (a "gr" parameter, RFC 5627).
func isGRUU(m *engine.Msg) int {
	u, ok := parseSIPURI(m.RURI())
	if !ok || !m.IsRequest() {
		return -1
	}
	for _, p := range params(u.Params) {
		if strings.EqualFold(p[0], "gr") {
			if p[1] == "" {
				return 2 // a public GRUU (Kamailio returns 2 for gr without a value)
			}
			return 1
		}
	}
	return -1
}

// hdrDateCheck is hdr_date_check(tdiff): 1 when the Date header is at most tdiff seconds old; -1 no or bad
// Date, -4 outdated (Kamailio's codes).
func hdrDateCheck(m *engine.Msg, tdiff int) int {
	v, ok := m.Header("date")
	if !ok {
		return -1
	}
	t, err := http.ParseTime(strings.TrimSpace(v))
	if err != nil {
		return -1
	}
	if time.Now().Unix() > t.Unix()+int64(tdiff) {
		return -4
	}
	return 1
}

// contactValues returns the URIs of the Contact header values with their positions in the message buffer.
func contactValues(m *engine.Msg) (spans [][2]int) {
	for _, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, "contact") {
			continue
		}
		v := h.Value(m.Buf)
		base := h.VStart
		off := 0
		for _, part := range rawsip.SplitValues(string(v)) {
			start := int(base) + off
			off += len(part) + 1
			p := part
			if lt := strings.IndexByte(p, '<'); lt >= 0 {
				gt := strings.IndexByte(p[lt:], '>')
				if gt < 0 {
					continue
				}
				spans = append(spans, [2]int{start + lt + 1, start + lt + gt})
				continue
			}
			t := strings.TrimSpace(p)
			if t == "" || t == "*" {
				continue
			}
			lead := strings.Index(p, t)
			end := len(t)
			if semi := strings.IndexByte(t, ';'); semi >= 0 {
				end = semi
			}
			spans = append(spans, [2]int{start + lead, start + lead + end})
		}
	}
	return spans
}

// contactParamEncode is contact_param_encode(pname, saddr): each Contact URI becomes
// saddr;pname=base64url(URI) (no padding, as Kamailio).
func contactParamEncode(m *engine.Msg, pname, saddr string) int {
	for _, sp := range contactValues(m) {
		uri := string(m.Buf[sp[0]:sp[1]])
		if len(uri) <= 4 {
			continue
		}
		enc := base64.RawURLEncoding.EncodeToString([]byte(uri))
		nu := saddr + ";" + pname + "=" + enc
		if sp[0] == 0 || m.Buf[sp[0]-1] != '<' {
			nu = "<" + nu + ">"
		}
		m.AddEdit(sp[0], sp[1], nu)
	}
	return 1
}

// decodeParam returns the decoded value of parameter pname of uri.
func decodeParam(uri, pname string) (string, bool) {
	u, ok := parseSIPURI(uri)
	if !ok {
		return "", false
	}
	for _, p := range params(u.Params) {
		if p[0] == pname && p[1] != "" {
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p[1], "="))
			if err != nil {
				return "", false
			}
			return string(b), true
		}
	}
	return "", false
}

// contactParamDecode is contact_param_decode(pname): each Contact URI with parameter pname is replaced by
// the URI it encodes.
func contactParamDecode(m *engine.Msg, pname string) int {
	for _, sp := range contactValues(m) {
		if d, ok := decodeParam(string(m.Buf[sp[0]:sp[1]]), pname); ok {
			m.AddEdit(sp[0], sp[1], d)
		}
	}
	return 1
}

// contactParamDecodeRURI is contact_param_decode_ruri(pname): the R-URI becomes the URI its parameter
// pname encodes; -1 when it has none.
func contactParamDecodeRURI(m *engine.Msg, pname string) int {
	if !m.IsRequest() {
		return -1
	}
	d, ok := decodeParam(m.RURI(), pname)
	if !ok {
		return -1
	}
	m.NewURI = d
	return 1
}

// contactParamRm is contact_param_rm(pname): parameter pname goes from every Contact URI.
func contactParamRm(m *engine.Msg, pname string) int {
	for _, sp := range contactValues(m) {
		u, ok := parseSIPURI(string(m.Buf[sp[0]:sp[1]]))
		if !ok {
			continue
		}
		var kept []string
		found := false
		for _, p := range params(u.Params) {
			if p[0] == pname {
				found = true
				continue
			}
			if p[1] != "" {
				kept = append(kept, p[0]+"="+p[1])
			} else {
				kept = append(kept, p[0])
			}
		}
		if !found {
			continue
		}
		u.Params = ""
		if len(kept) > 0 {
			u.Params = ";" + strings.Join(kept, ";")
		}
		m.AddEdit(sp[0], sp[1], uriString(u))
	}
	return 1
}

// encodeContact is encode_contact(prefix, public_ip): each Contact URI sip:user:pass@host:port;transport=p
// becomes sip:prefix*user*pass*host*port*p@public_ip;params (Kamailio's contact encoding, separator '*').
func encodeContact(m *engine.Msg, prefix, ip string) int {
	spans := contactValues(m)
	if len(spans) == 0 {
		return -1
	}
	for _, sp := range spans {
		u, ok := parseSIPURI(string(m.Buf[sp[0]:sp[1]]))
		if !ok || u.Host == "" {
			return -1
		}
		transport := ""
		for _, p := range params(u.Params) {
			if strings.EqualFold(p[0], "transport") {
				transport = p[1]
			}
		}
		enc := u.Scheme + ":" + strings.Join([]string{prefix, u.User, u.Password, u.Host, u.Port, transport}, "*") +
			"@" + ip + u.Params + u.Headers
		m.AddEdit(sp[0], sp[1], enc)
	}
	return 1
}

// decodeURI undoes encodeContact: sip:prefix*user*pass*host*port*proto@ip;params → the original URI.
func decodeURI(s string) (string, bool) {
	u, ok := parseSIPURI(s)
	if !ok {
		return "", false
	}
	f := strings.Split(u.User, "*")
	if len(f) != 6 {
		return "", false
	}
	out := rawsip.URI{Scheme: u.Scheme, User: f[1], Password: f[2], HasPass: f[2] != "", Host: f[3], Port: f[4],
		Params: u.Params, Headers: u.Headers}
	if f[5] != "" && !strings.Contains(strings.ToLower(u.Params), "transport=") {
		out.Params = ";transport=" + f[5] + u.Params
	}
	return uriString(out), true
}

// decodeContact is decode_contact: an R-URI made by encode_contact becomes the original one.
func decodeContact(m *engine.Msg) int {
	if !m.IsRequest() {
		return -1
	}
	d, ok := decodeURI(m.RURI())
	if !ok {
		return -1
	}
	m.NewURI = d
	return 1
}

// decodeContactHeader is decode_contact_header: Contact URIs made by encode_contact become the originals.
func decodeContactHeader(m *engine.Msg) int {
	spans := contactValues(m)
	if len(spans) == 0 {
		return -1
	}
	for _, sp := range spans {
		if d, ok := decodeURI(string(m.Buf[sp[0]:sp[1]])); ok {
			m.AddEdit(sp[0], sp[1], d)
		}
	}
	return 1
}
