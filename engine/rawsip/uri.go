package rawsip

import "strings"

// URI is a SIP/SIPS/TEL URI split into its parts as written, so that pseudo-variables return the text
// the message carried and a rewrite of one part keeps the others byte for byte.
type URI struct {
	Scheme   string // "sip", "sips", "tel" as written
	User     string // without password
	Password string
	HasPass  bool
	Host     string // IPv6 with brackets
	Port     string // digits as written, "" when absent
	Params   string // ";transport=tcp;lr", with the leading ';'
	Headers  string // "?subject=x", with the leading '?'
}

// ParseURI splits a URI. tel: URIs keep the number as User and have no host, as in Kamailio.
func ParseURI(s string) (URI, bool) {
	var u URI
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return u, false
	}
	u.Scheme = s[:colon]
	rest := s[colon+1:]
	if rest == "" || strings.ContainsAny(rest, " \t\r\n<>") {
		return u, false
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, u.Headers = rest[:q], rest[q:]
	}
	switch strings.ToLower(u.Scheme) {
	case "tel", "tels":
		if i := strings.IndexByte(rest, ';'); i >= 0 {
			rest, u.Params = rest[:i], rest[i:]
		}
		u.User = rest
		return u, u.User != ""
	case "sip", "sips":
	default:
		return u, false
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		ui := rest[:at]
		rest = rest[at+1:]
		if c := strings.IndexByte(ui, ':'); c >= 0 {
			u.User, u.Password, u.HasPass = ui[:c], ui[c+1:], true
		} else {
			u.User = ui
		}
	}
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		rest, u.Params = rest[:i], rest[i:]
	}
	hp := rest
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return u, false
		}
		u.Host, hp = hp[:end+1], hp[end+1:]
		if hp != "" {
			if hp[0] != ':' {
				return u, false
			}
			u.Port = hp[1:]
		}
	} else if c := strings.IndexByte(hp, ':'); c >= 0 {
		u.Host, u.Port = hp[:c], hp[c+1:]
	} else {
		u.Host = hp
	}
	if u.Host == "" {
		return u, false
	}
	for i := 0; i < len(u.Port); i++ {
		if u.Port[i] < '0' || u.Port[i] > '9' {
			return u, false
		}
	}
	return u, true
}

// PortNum is the port as a number, 0 when the URI has none (ParseURI accepts only digits; beyond 65535 it
// stops counting, so a port too large reads as over 65535). No allocation, unlike strconv.Atoi("").
func (u URI) PortNum() int {
	n := 0
	for i := 0; i < len(u.Port) && n <= 65535; i++ {
		n = n*10 + int(u.Port[i]-'0')
	}
	return n
}

// String joins the parts again.
func (u URI) String() string {
	var b strings.Builder
	b.Grow(len(u.Scheme) + len(u.User) + len(u.Password) + len(u.Host) + len(u.Port) + len(u.Params) + len(u.Headers) + 4)
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	if u.User != "" || u.HasPass {
		b.WriteString(u.User)
		if u.HasPass {
			b.WriteByte(':')
			b.WriteString(u.Password)
		}
		if u.Host != "" {
			b.WriteByte('@')
		}
	}
	b.WriteString(u.Host)
	if u.Port != "" {
		b.WriteByte(':')
		b.WriteString(u.Port)
	}
	b.WriteString(u.Params)
	b.WriteString(u.Headers)
	return b.String()
}

// NameAddr splits a From/To/Contact value into display name (as written, quotes kept), URI and the header
// parameters after the URI.
func NameAddr(v string) (display, uri, params string, ok bool) {
	v = strings.TrimSpace(v)
	if lt := IndexUnquoted(v, '<'); lt >= 0 {
		gt := strings.IndexByte(v[lt:], '>')
		if gt < 0 {
			return "", "", "", false
		}
		return strings.TrimSpace(v[:lt]), strings.TrimSpace(v[lt+1 : lt+gt]), v[lt+gt+1:], true
	}
	// addr-spec: the URI ends at the first ';' (its parameters are header parameters, RFC 3261 §20)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return "", strings.TrimSpace(v[:i]), v[i:], v[:i] != ""
	}
	return "", v, "", v != ""
}

// IndexUnquoted is the index of the first c in s outside a quoted string (a display name may hold '<',
// ',' or ';'), -1 when none.
func IndexUnquoted(s string, c byte) int {
	in := false
	for i := 0; i < len(s); i++ {
		switch {
		case in && s[i] == '\\':
			i++
		case s[i] == '"':
			in = !in
		case !in && s[i] == c:
			return i
		}
	}
	return -1
}

// TagOf is the tag parameter of a From/To value ("" when it has none or does not parse).
func TagOf(v string) string {
	_, _, params, ok := NameAddr(v)
	if !ok {
		return ""
	}
	t, _, _, _ := Param(params, "tag")
	return t
}
