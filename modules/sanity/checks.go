package sanity

import (
	"bytes"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// checker runs the checks of one sanity_check call. The reasons are Kamailio 5.6's sanity.c phrases, typo
// included ("Invalid To Header"), compared on the wire with Kamailio 5.6.3 in kamailio_test.go.
type checker struct {
	s *Sanity
	m *engine.Msg
	// first[h] is the index of the first header of kind h (-1: none), count[h] how many there are: one pass
	// over the headers serves every check.
	first [nKinds]int16
	count [nKinds]int16
}

// The headers the checks look at.
const (
	hFrom = iota
	hTo
	hCallID
	hCSeq
	hVia
	hContentLength
	hExpires
	hProxyRequire
	hContact
	hAuthorization
	hProxyAuthorization
	nKinds
)

var kindNames = [nKinds]string{"from", "to", "call-id", "cseq", "via", "content-length", "expires",
	"proxy-require", "contact", "authorization", "proxy-authorization"}

// index classifies every header once.
func (c *checker) index() {
	for i := range c.first {
		c.first[i] = -1
	}
	buf := c.m.Buf
	for i, h := range c.m.Raw.Hdrs {
		name := buf[h.Start:h.NameEnd]
		if len(name) == 1 {
			if full := rawsip.Compact(name[0]); full != "" {
				name = []byte(full) // a constant's bytes: no allocation once inlined
			}
		}
		for k := range kindNames {
			if len(name) == len(kindNames[k]) && equalFold(name, kindNames[k]) {
				if c.count[k] == 0 {
					c.first[k] = int16(i)
				}
				c.count[k]++
				break
			}
		}
	}
}

func equalFold(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		x := b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// value returns the value of the first header of kind k.
func (c *checker) value(k int) ([]byte, bool) {
	i := c.first[k]
	if i < 0 {
		return nil, false
	}
	return c.m.Raw.Hdrs[i].Value(c.m.Buf), true
}

// run applies the selected checks in Kamailio's order and stops at the first failure.
func (c *checker) run(msgChecks, uriChecks int) bool {
	if len(c.m.Raw.Hdrs) > 32767 {
		return c.failSilently()
	}
	c.index()
	req := c.m.IsRequest()
	steps := [...]struct {
		bit int
		fn  func() bool
	}{
		{CheckRURIVersion, c.ruriVersion},
		{CheckRURIScheme, c.ruriScheme},
		{CheckRequiredHdrs, c.requiredHeaders},
		{CheckVia1, c.via1},
		// CheckViaVersion and CheckViaProtocol are no-ops in Kamailio 5.6 (its Via parser already
		// rejects what they would test): they always pass here too.
		{CheckCSeqMethod, c.cseqMethod},
		{CheckCSeqValue, c.cseqValue},
		{CheckContentLength, c.contentLength},
		{CheckExpires, c.expires},
		{CheckProxyRequire, c.proxyRequire},
		{CheckParseURIs, func() bool { return c.parseURIs(uriChecks) }},
		{CheckDigest, func() bool { return c.digest() == passed }},
		{CheckAuthorization, func() bool { return c.digest() != failed }},
		{CheckDupTags, c.dupTags},
	}
	for _, st := range steps {
		if msgChecks&st.bit == 0 {
			continue
		}
		// A reply has no request line: the checks of the R-URI and the request method do not apply.
		if !req && st.bit&(CheckRURIVersion|CheckRURIScheme|CheckCSeqMethod) != 0 {
			continue
		}
		if !st.fn() {
			return false
		}
	}
	return true
}

// firstLine returns the request line's method and version as written.
func (c *checker) firstLine() (method, version []byte) {
	line := c.m.Buf[:c.m.Raw.FirstLineEnd]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return line, nil
	}
	method = line[:sp]
	if sp2 := bytes.LastIndexByte(line, ' '); sp2 > sp {
		version = bytes.TrimRight(line[sp2+1:], "\r")
	}
	return method, version
}

func (c *checker) ruriVersion() bool {
	_, v := c.firstLine()
	if len(v) == 0 {
		return true
	}
	slash := bytes.IndexByte(v, '/')
	if slash < 0 {
		return false
	}
	if string(v[slash+1:]) != "2.0" {
		return c.fail(505, "Version Not Supported (R-URI)")
	}
	return true
}

// ruriScheme: Kamailio's URI parser rejects an unknown scheme, so such an R-URI gets 400 "Bad Request URI";
// its 416 "Unsupported URI Scheme in Request URI" is unreachable in 5.6 (checked on the wire).
func (c *checker) ruriScheme() bool {
	if !validURI(c.m.RURI()) {
		return c.fail(400, "Bad Request URI")
	}
	return true
}

// requiredHeaders: From, To, Call-ID and CSeq must be present, each once. Kamailio answers neither case
// (its parser refuses a second Call-ID, so no reply can be built).
func (c *checker) requiredHeaders() bool {
	if c.count[hFrom] != 1 || c.count[hTo] != 1 || c.count[hCallID] != 1 || c.count[hCSeq] != 1 {
		return c.failSilently()
	}
	return true
}

func (c *checker) via1() bool {
	v, ok := c.value(hVia)
	if !ok {
		return c.failSilently()
	}
	// "SIP/2.0/UDP host[:port][;params]": a sent-by host must follow the protocol
	sp := bytes.IndexAny(v, " \t")
	if sp < 0 || len(bytes.TrimLeft(v[sp:], " \t")) == 0 {
		return c.failSilently()
	}
	return true
}

// cseq returns the CSeq number and method; ok is false when the header is missing or has no method
// (Kamailio's parser fails then, and no reply is sent).
func (c *checker) cseq() (num, method []byte, ok bool) {
	v, ok := c.value(hCSeq)
	if !ok {
		return nil, nil, false
	}
	sp := bytes.IndexAny(v, " \t")
	if sp <= 0 {
		return nil, nil, false
	}
	method = bytes.TrimSpace(v[sp:])
	return v[:sp], method, len(method) > 0
}

func (c *checker) cseqMethod() bool {
	_, cm, ok := c.cseq()
	if !ok {
		return c.failSilently()
	}
	rm, _ := c.firstLine()
	if !bytes.Equal(cm, rm) { // case-sensitive, as Kamailio's memcmp
		return c.fail(400, "CSeq method does not match request method")
	}
	return true
}

func (c *checker) cseqValue() bool {
	n, _, ok := c.cseq()
	if !ok {
		return c.failSilently()
	}
	if !validUint(n) {
		return c.fail(400, "CSeq number is illegal")
	}
	return true
}

// contentLength compares Content-Length with the bytes after the headers. On a stream the engine frames
// the message by Content-Length, so only a datagram can disagree.
func (c *checker) contentLength() bool {
	v, ok := c.value(hContentLength)
	if !ok {
		return true // Kamailio only warns
	}
	n, ok := atoi(v)
	if !ok {
		return c.fail(400, "Content-Length Failure")
	}
	if n != len(c.m.Body()) {
		return c.fail(400, "Content-Length mis-match")
	}
	return true
}

func (c *checker) expires() bool {
	v, ok := c.value(hExpires)
	if !ok {
		return true
	}
	// trimmed by the scanner, as Kamailio's parse_expires trims
	if len(v) == 0 {
		return c.fail(400, "Bad Expires Header")
	}
	if !validUint(v) {
		return c.fail(400, "Expires value is illegal")
	}
	return true
}

// proxyRequire checks the options of the first Proxy-Require header (Kamailio looks at that one only)
// against proxy_require, case-sensitively as Kamailio; the first unknown option is named in an Unsupported
// header of the 420 (kept for the message's later replies too, as Kamailio's reply lump).
func (c *checker) proxyRequire() bool {
	v, ok := c.value(hProxyRequire)
	if !ok {
		return true
	}
	if len(v) == 0 {
		return c.fail(400, "Bad Proxy Require Header")
	}
	for len(v) > 0 {
		opt := v
		if comma := bytes.IndexByte(v, ','); comma >= 0 {
			opt, v = v[:comma], v[comma+1:]
		} else {
			v = nil
		}
		opt = bytes.TrimSpace(opt)
		if !c.s.supports(opt) {
			c.m.ReplyHdrs = append(c.m.ReplyHdrs, "Unsupported: "...)
			c.m.ReplyHdrs = append(c.m.ReplyHdrs, opt...)
			c.m.ReplyHdrs = append(c.m.ReplyHdrs, "\r\n"...)
			return c.fail(420, "Bad Proxy Require Extension")
		}
	}
	return true
}

func (s *Sanity) supports(opt []byte) bool {
	for _, o := range s.supported {
		if o == string(opt) {
			return true
		}
	}
	return false
}

func (c *checker) parseURIs(checks int) bool {
	if checks&URIRURI != 0 && c.m.IsRequest() && !validURI(c.m.RURI()) {
		return c.fail(400, "Bad Request URI")
	}
	if checks&URIFrom != 0 && !c.nameAddrURI(hFrom, "Invalid From Header") {
		return false
	}
	if checks&URITo != 0 && !c.nameAddrURI(hTo, "Ivalid To Header") {
		return false
	}
	if checks&URIContact != 0 {
		return c.contactURIs()
	}
	return true
}

// nameAddrURI checks the URI of From or To: a missing or empty header is not answered, a bad one is.
func (c *checker) nameAddrURI(k int, reason string) bool {
	v, ok := c.value(k)
	if !ok || len(v) == 0 {
		return c.failSilently()
	}
	_, uri, _, ok := rawsip.NameAddr(string(v))
	if !ok || !validURI(uri) {
		return c.fail(400, reason)
	}
	return true
}

// contactURIs parses every Contact header and the URI of the first contact ("*" passes), as Kamailio's
// parse_contact_headers and check_parse_uris.
func (c *checker) contactURIs() bool {
	if c.count[hContact] == 0 {
		return true
	}
	buf := c.m.Buf
	first := true
	for _, h := range c.m.Raw.Hdrs[c.first[hContact]:] {
		if !h.Is(buf, "contact") {
			continue
		}
		v := h.Value(buf)
		if len(v) == 0 {
			return c.fail(400, "Bad Contact Header")
		}
		if string(v) == "*" {
			first = false
			continue
		}
		for len(v) > 0 {
			end := rawsip.FirstValueEnd(v)
			_, uri, _, ok := rawsip.NameAddr(string(v[:end]))
			if !ok {
				return c.fail(400, "Bad Contact Header")
			}
			if first && !validURI(uri) {
				return c.fail(400, "Bad Contact URI")
			}
			first = false
			if end == len(v) {
				break
			}
			v = v[end+1:]
		}
	}
	return true
}

// digest results, Kamailio's SANITY_CHECK_PASSED/FAILED/NOT_APPLICABLE.
const (
	passed = iota
	failed
	notApplicable
)

// digest checks every Authorization, then every Proxy-Authorization header: a non-digest scheme makes the
// whole check "not applicable" (bit 2048 fails then, silently; bit 8192 passes).
func (c *checker) digest() int {
	buf := c.m.Buf
	for _, k := range [...]int{hAuthorization, hProxyAuthorization} {
		if c.count[k] == 0 {
			continue
		}
		for _, h := range c.m.Raw.Hdrs[c.first[k]:] {
			if !h.Is(buf, kindNames[k]) {
				continue
			}
			switch r, reason := checkCredentials(h.Value(buf)); r {
			case notApplicable:
				return notApplicable
			case failed:
				c.fail(400, reason)
				return failed
			}
		}
	}
	return passed
}

// checkCredentials parses one digest credentials value (Kamailio's parse_credentials and check_dig_cred).
func checkCredentials(v []byte) (int, string) {
	sp := bytes.IndexAny(v, " \t")
	scheme := v
	if sp >= 0 {
		scheme = v[:sp]
	}
	if !strings.EqualFold(string(scheme), "digest") {
		return notApplicable, ""
	}
	var have [7]bool // username realm nonce uri response cnonce nc
	var empty [7]bool
	qop := false
	rest := v[len(scheme):]
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n,")
		if len(rest) == 0 {
			break
		}
		eq := bytes.IndexByte(rest, '=')
		if eq <= 0 {
			return failed, "Bad Auth Header"
		}
		name := bytes.TrimSpace(rest[:eq])
		rest = bytes.TrimLeft(rest[eq+1:], " \t")
		var val []byte
		if len(rest) > 0 && rest[0] == '"' {
			end := 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(rest) {
				return failed, "Bad Auth Header"
			}
			val, rest = rest[1:end], rest[end+1:]
		} else {
			end := bytes.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = bytes.TrimSpace(rest[:end]), rest[end:]
		}
		k := -1
		switch strings.ToLower(string(name)) {
		case "username":
			k = 0
		case "realm":
			k = 1
		case "nonce":
			k = 2
		case "uri":
			k = 3
		case "response":
			k = 4
		case "cnonce":
			k = 5
		case "nc":
			k = 6
		case "qop":
			q := strings.ToLower(string(val))
			qop = q == "auth" || q == "auth-int"
		}
		if k >= 0 {
			have[k], empty[k] = true, len(val) == 0
		}
	}
	for k := 0; k < 5; k++ {
		if !have[k] {
			return failed, "Bad Auth Credentials"
		}
	}
	if qop && (!have[5] || !have[6]) {
		return failed, "Bad Auth Credentials"
	}
	switch {
	case empty[0]:
		return failed, "Auth Empty User"
	case empty[2]:
		return failed, "Auth Empty Nonce"
	case empty[4]:
		return failed, "Auth Empty Response"
	}
	return passed, ""
}

// dupTags fails when From or To carries more than one tag parameter.
func (c *checker) dupTags() bool {
	for _, hd := range [...]struct {
		k      int
		reason string
	}{
		{hFrom, "Many From Tag Params"}, {hTo, "Many To Tag Params"},
	} {
		v, ok := c.value(hd.k)
		if !ok {
			return c.failSilently()
		}
		_, _, params, ok := rawsip.NameAddr(string(v))
		if !ok {
			return c.failSilently()
		}
		if countTags(params) > 1 {
			return c.fail(400, hd.reason)
		}
	}
	return true
}

func countTags(params string) int {
	n := 0
	for _, p := range strings.Split(params, ";") {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "tag") {
			n++
		}
	}
	return n
}

// validUint is Kamailio's str2valid_uint: up to 10 digits, and a 10-digit value not above "4294967296"
// (Kamailio's bound, one more than the largest uint32, is kept: it decides what passes).
func validUint(s []byte) bool {
	if len(s) == 0 || len(s) > 10 {
		return len(s) == 0 // Kamailio accepts an empty string here; callers reject it before
	}
	const limit = "4294967296"
	equal := len(s) == 10
	for i, ch := range s {
		if ch < '0' || ch > '9' {
			return false
		}
		if equal {
			if ch < limit[i] {
				equal = false
			} else if ch > limit[i] {
				return false
			}
		}
	}
	return true
}

func atoi(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

// validURI is what Kamailio's parse_uri accepts, closely enough for the sanity checks: sip/sips with a
// host (a name, an IPv4 address or a bracketed IPv6 address) and a port up to 65535; tel/tels with a
// number; urn with a body. Other schemes fail.
func validURI(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return false
	}
	switch strings.ToLower(s[:colon]) {
	case "urn":
		return len(s) > colon+1 && !strings.ContainsAny(s, " \t\r\n<>")
	case "sip", "sips", "tel", "tels":
	default:
		return false
	}
	u, ok := rawsip.ParseURI(s)
	if !ok {
		return false
	}
	if u.Host == "" { // tel
		return true
	}
	if u.Port != "" || strings.HasSuffix(strings.TrimSuffix(s[:len(s)-len(u.Params)-len(u.Headers)], u.Port), ":") {
		p, ok := atoi([]byte(u.Port))
		if !ok || p > 65535 {
			return false
		}
	}
	if u.Host[0] == '[' {
		return len(u.Host) > 2 && strings.IndexFunc(u.Host[1:len(u.Host)-1], func(r rune) bool {
			return !(r == ':' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F'))
		}) < 0
	}
	for i := 0; i < len(u.Host); i++ {
		ch := u.Host[i]
		if !(ch == '.' || ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') || (ch|0x20 >= 'a' && ch|0x20 <= 'z')) {
			return false
		}
	}
	return true
}
