package registrar

import (
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// aor canonicalises a SIP URI into the address of record as Kamailio's extract_aor does: the user part
// unescaped, "@domain" added with use_domain (realm_prefix stripped), all lower case unless case_sensitive
// (then only the domain). ok is false when the URI does not parse.
func (r *Registrar) aor(uri string) (string, bool) {
	u, ok := rawsip.ParseURI(strings.TrimSpace(uri))
	if !ok {
		return "", false
	}
	user := unescape(u.User)
	if strings.EqualFold(u.Scheme, "tel") || strings.EqualFold(u.Scheme, "tels") {
		u.Host = ""
	}
	if !r.CaseSensitive {
		user = strings.ToLower(user)
	}
	if !r.UseDomain {
		return user, true
	}
	host := strings.ToLower(u.Host)
	if p := strings.ToLower(r.RealmPrefix); p != "" && len(p) < len(host) && strings.HasPrefix(host, p) {
		host = host[len(p):]
	}
	return user + "@" + host, true
}

// unescape decodes %XX in a URI user part; a bad escape is kept as written.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// contact is one Contact of a REGISTER.
type contact struct {
	uri      string
	expires  string // the expires parameter; "" = none
	hasExp   bool
	q        string
	hasQ     bool
	received string
	methods  string
	hasMeth  bool
	instance string
	regID    string
}

// contacts appends the contacts of every Contact header of m, the first at header index first, to list.
// star reports a "*" Contact; values counts the Contact values in all (a "*" among others is an error of
// the caller's to report). The strings are views of m.Buf (see view). list is returned even when ok is
// false, so that the caller keeps its backing array.
func contacts(m *engine.Msg, first int, list []contact) (_ []contact, star bool, values int, ok bool) {
	for _, h := range m.Raw.Hdrs[first:] {
		if !h.Is(m.Buf, "contact") {
			continue
		}
		v := h.Value(m.Buf)
		for len(v) > 0 {
			end := rawsip.FirstValueEnd(v)
			one := strings.TrimSpace(rawsip.View(v[:end]))
			if end < len(v) {
				v = v[end+1:]
			} else {
				v = nil
			}
			if one == "" {
				continue
			}
			values++
			if one == "*" {
				star = true
				continue
			}
			_, uri, params, good := rawsip.NameAddr(one)
			if !good || uri == "" {
				return list, star, values, false
			}
			c := contact{uri: uri}
			c.params(params)
			list = append(list, c)
		}
	}
	return list, star, values, true
}

// params reads the parameters save uses from a Contact's header parameters in one pass: for each, the
// first occurrence, its name in any case, its value without blanks and quotes (what param returns).
func (c *contact) params(params string) {
	var hasRcv, hasInst, hasRegID bool
	for i := 0; i < len(params); {
		k, v, _, end, ok := rawsip.NextParam(params, i)
		if !ok {
			return
		}
		i = end
		var dst *string
		switch {
		case !c.hasExp && strings.EqualFold(k, "expires"):
			dst, c.hasExp = &c.expires, true
		case !c.hasQ && strings.EqualFold(k, "q"):
			dst, c.hasQ = &c.q, true
		case !hasRcv && strings.EqualFold(k, "received"):
			dst, hasRcv = &c.received, true
		case !c.hasMeth && strings.EqualFold(k, "methods"):
			dst, c.hasMeth = &c.methods, true
		case !hasInst && strings.EqualFold(k, "+sip.instance"):
			dst, hasInst = &c.instance, true
		case !hasRegID && strings.EqualFold(k, "reg-id"):
			dst, hasRegID = &c.regID, true
		default:
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		*dst = v
	}
}

// param returns a header parameter's value without quotes.
func param(params, name string) (string, bool) {
	v, _, _, ok := rawsip.Param(params, name)
	if !ok {
		return "", false
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v, true
}

// parseQ reads a qvalue (RFC 3261 §25.1: "0"["."0*3DIGIT] / "1"["."0*3"0"]) as q × 1000.
func parseQ(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 5 {
		return 0, false
	}
	ip, frac, dot := strings.Cut(s, ".")
	if ip != "0" && ip != "1" || dot && len(frac) > 3 {
		return 0, false
	}
	q := int(ip[0]-'0') * 1000
	mul := 100
	for i := 0; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' {
			return 0, false
		}
		q += int(frac[i]-'0') * mul
		mul /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// appendQ appends q × 1000 (0..1000) as Kamailio's q2str writes it: "1", "0", "0.5", "0.25", "0.125".
func appendQ(b []byte, q int) []byte {
	switch {
	case q >= 1000:
		return append(b, '1')
	case q <= 0:
		return append(b, '0')
	}
	b = append(b, '0', '.', byte('0'+q/100))
	if q %= 100; q != 0 {
		b = append(b, byte('0'+q/10))
		if q %= 10; q != 0 {
			b = append(b, byte('0'+q))
		}
	}
	return b
}

// Kamailio's method bits (parser/msg_parser.h), so $ulc(p=>methods) shows the numbers Kamailio shows.
var methodBits = [...]struct {
	name string
	bit  uint32
}{
	{"INVITE", 1}, {"CANCEL", 2}, {"ACK", 4}, {"BYE", 8}, {"INFO", 16}, {"REGISTER", 32}, {"SUBSCRIBE", 64},
	{"NOTIFY", 128}, {"MESSAGE", 256}, {"OPTIONS", 512}, {"PRACK", 1024}, {"UPDATE", 2048}, {"REFER", 4096},
	{"PUBLISH", 8192}, {"KDMQ", 16384}, {"GET", 32768}, {"POST", 65536}, {"PUT", 131072}, {"DELETE", 262144},
}

const (
	methodOther = 524288
	allMethods  = 0xFFFFFFFF
)

// methodBit is the bit of a method name, matched without regard to ASCII case (as Kamailio's parser) and
// without the upper-case copy and map lookup it once took for every Allow entry of every REGISTER.
func methodBit(name string) uint32 {
	name = strings.TrimSpace(name)
	for _, mb := range methodBits {
		if len(mb.name) == len(name) && upperEqual(name, mb.name) {
			return mb.bit
		}
	}
	return methodOther
}

// upperEqual reports whether s is upper (an upper-case ASCII word of the same length) in any ASCII case.
func upperEqual(s, upper string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != upper[i] && c != upper[i]+('a'-'A') {
			return false
		}
	}
	return true
}

// methodMask adds the methods of a comma-separated list (Allow, a methods contact parameter) to mask.
func methodMask(mask uint32, list string) uint32 {
	for list != "" {
		t, rest, _ := strings.Cut(list, ",")
		if strings.TrimSpace(t) != "" {
			mask |= methodBit(t)
		}
		list = rest
	}
	return mask
}

// uint32Value parses a header value of digits (surrounding blanks allowed).
func uint32Value(v []byte) (uint32, bool) {
	v = trimBlanks(v)
	if len(v) == 0 || len(v) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func trimBlanks(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// firstPathURI returns the URI of the first element of a Path vector (the next hop) and its received
// parameter.
func firstPathURI(path string) (uri, received string, ok bool) {
	end := rawsip.FirstValueEnd([]byte(path))
	_, uri, _, ok = rawsip.NameAddr(path[:end])
	if !ok || uri == "" {
		return "", "", false
	}
	if u, good := rawsip.ParseURI(uri); good {
		received, _ = param(u.Params, "received")
	}
	return uri, received, true
}

// toURI returns the URI of the To header.
func toURI(m *engine.Msg) (string, bool) {
	v, ok := m.Header("to")
	if !ok {
		return "", false
	}
	_, uri, _, ok := rawsip.NameAddr(v)
	return uri, ok && uri != ""
}

// hasOptionTag reports whether a Supported (or Require) header lists tag.
func hasOptionTag(m *engine.Msg, header, tag string) (present, has bool) {
	for _, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, header) {
			continue
		}
		present = true
		v := string(h.Value(m.Buf))
		for v != "" {
			t, rest, _ := strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				has = true
			}
			v = rest
		}
	}
	return present, has
}
