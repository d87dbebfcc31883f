package engine

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/siplua/siplua/engine/rawsip"
)

// scan locates the parts of m.Buf and tells a reply from a request by its start line.
func (m *Msg) scan() error {
	m.ruri = "" // a new buffer: the cached Request-URI is stale
	m.reply = bytes.HasPrefix(m.Buf, []byte("SIP/"))
	return rawsip.Scan(m.Buf, &m.Raw)
}

// checkRaw is the sanity check every received message passes before it is routed, on the raw positions
// alone (no allocation): a well-formed start line, the headers RFC 3261 §8.1.1 makes mandatory (Via, From,
// To, Call-ID, CSeq) present and well-formed, numeric Max-Forwards and Content-Length, and a body as long
// as Content-Length says. It replaces the full sipgo parse the worker used to do on every message for this;
// the typed form is built later, only for a function that asks for it (Msg.Request). The headers checked are
// those sipgo parses into typed values, with sipgo's rules, so what it would refuse is refused here.
func (m *Msg) checkRaw() error {
	line := m.Buf[:m.Raw.FirstLineEnd]
	// Lines end in CRLF (RFC 3261 §7): sipgo, which parses a message when a function needs it, reads lines
	// that way, so a message it could not parse is refused here, up front, as before.
	if m.Buf[m.Raw.FirstLineEnd] != '\r' || m.Buf[m.Raw.HdrsEnd] != '\r' {
		return errors.New("lines must end in CRLF")
	}
	for _, h := range m.Raw.Hdrs {
		if m.Buf[h.End-2] != '\r' {
			return errors.New("lines must end in CRLF")
		}
	}
	for i := bytes.IndexByte(m.Buf[:m.Raw.HdrsEnd], '\r'); i >= 0 && i < m.Raw.HdrsEnd; {
		if m.Buf[i+1] != '\n' {
			return errors.New("CR inside a line")
		}
		j := bytes.IndexByte(m.Buf[i+1:m.Raw.HdrsEnd], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if m.reply {
		if _, _, ok := statusLine(line); !ok {
			return fmt.Errorf("bad status line %q", clip(line))
		}
	} else {
		if _, ver, ok := split3(line); ok && !versionOK(ver) && len(ver) >= 4 && bytes.EqualFold(ver[:4], []byte("SIP/")) {
			return &rejectError{code: 505, reason: "Version Not Supported", kind: rejVersion,
				err: fmt.Errorf("version %q", clip(ver))}
		}
		if !requestLine(line) {
			return fmt.Errorf("bad request line %q", clip(line))
		}
	}
	var seen uint8
	var first [single]int // index+1 in m.Raw.Hdrs of the first of each single-value header, 0: not seen
	for i, h := range m.Raw.Hdrs {
		v := h.Value(m.Buf)
		name := h.Name(m.Buf)
		kind := checkKind(name)
		if k := kind.single(); k >= 0 {
			if f := first[k]; f == 0 {
				first[k] = i + 1
			} else if err := sameSingle(k, m.Raw.Hdrs[f-1].Value(m.Buf), v, len(m.Raw.Hdrs[f-1].Name(m.Buf)) == 1, len(name) == 1); err != nil {
				return err
			}
		}
		switch kind {
		case hVia:
			if seen&1 == 0 && !topViaOK(v[:rawsip.FirstValueEnd(v)]) {
				return badViaError{v: clip(v)}
			}
			seen |= 1
			if !viasOK(v) {
				return fmt.Errorf("bad Via %q", clip(v))
			}
		case hFrom:
			seen |= 2
			if !nameAddrOK(v) {
				return fmt.Errorf("bad From %q", clip(v))
			}
		case hTo:
			seen |= 4
			if !nameAddrOK(v) {
				return fmt.Errorf("bad To %q", clip(v))
			}
		case hCallID:
			seen |= 8
			if len(v) == 0 {
				return errors.New("empty Call-ID")
			}
		case hCSeq:
			seen |= 16
			if _, _, ok := cseqParts(v); !ok {
				return fmt.Errorf("bad CSeq %q", clip(v))
			}
		case hContact:
			if !addrListOK(v, true) {
				return fmt.Errorf("bad Contact %q", clip(v))
			}
		case hAddrList:
			if !addrListOK(v, false) {
				return fmt.Errorf("bad %s %q", name, clip(v))
			}
		case hMaxForwards:
			if _, ok := atoiBytes(v); !ok {
				return fmt.Errorf("bad Max-Forwards %q", clip(v))
			}
		case hContentLength:
			n, ok := atoiBytes(v)
			if !ok {
				return fmt.Errorf("bad Content-Length %q", clip(v))
			}
			if n > len(m.Buf)-m.Raw.Body {
				return fmt.Errorf("Content-Length %d is longer than the body (%d bytes)", n, len(m.Buf)-m.Raw.Body)
			}
		}
	}
	for i, name := range [...]string{"Via", "From", "To", "Call-ID", "CSeq"} {
		if seen&(1<<i) == 0 {
			return fmt.Errorf("no %s header", name)
		}
	}
	return nil
}

// rejectError is a request refused by a strict check with its own status and reason phrase (the phrase
// names the problem: "400 Duplicate Call-ID header"), counted by kind.
type rejectError struct {
	code   int
	reason string
	kind   int // rej* in stats.go
	err    error
}

func (e *rejectError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

// badViaError is a request whose top Via is unusable: no reply can be addressed, so it is dropped.
type badViaError struct{ v string }

func (e badViaError) Error() string { return fmt.Sprintf("unusable top Via %q", e.v) }

// versionOK: the only SIP version this proxy speaks (RFC 3261 §7.1; the version is case-insensitive).
func versionOK(ver []byte) bool { return bytes.EqualFold(ver, []byte("SIP/2.0")) }

// The single-value headers a message may not repeat with different values (RFC 3261 §7.3.1: only
// comma-list headers may appear more than once); proxies and UAs that picked different copies would act on
// different messages.
const (
	sFrom = iota
	sTo
	sCallID
	sCSeq
	sMaxForwards
	sContentLength
	single
)

var duplicateReasons = [single]string{"Duplicate From header", "Duplicate To header", "Duplicate Call-ID header",
	"Duplicate CSeq header", "Duplicate Max-Forwards header", "Duplicate Content-Length header"}

// hdrKind is what checkRaw checks a header as, found once per header (checkKind) instead of trying each
// name in turn with a case-folded compare.
type hdrKind uint8

const (
	hOther hdrKind = iota
	hVia
	hFrom
	hTo
	hCallID
	hCSeq
	hContact
	hAddrList // Route, Record-Route, Refer-To, Referred-By
	hMaxForwards
	hContentLength
)

// checkKind classifies a header name as isHeader does (compact forms v f t i m l), by length and first
// letter, with one case-folded compare at most.
func checkKind(name []byte) hdrKind {
	if len(name) == 0 {
		return hOther
	}
	c := name[0] | 0x20
	if len(name) == 1 {
		switch c {
		case 'v':
			return hVia
		case 'f':
			return hFrom
		case 't':
			return hTo
		case 'i':
			return hCallID
		case 'm':
			return hContact
		case 'l':
			return hContentLength
		}
		return hOther
	}
	var full string
	var k hdrKind
	switch {
	case c == 'v' && len(name) == 3:
		full, k = "via", hVia
	case c == 'f' && len(name) == 4:
		full, k = "from", hFrom
	case c == 't' && len(name) == 2:
		full, k = "to", hTo
	case c == 'c' && len(name) == 7 && (name[1]|0x20) == 'a':
		full, k = "call-id", hCallID
	case c == 'c' && len(name) == 7:
		full, k = "contact", hContact
	case c == 'c' && len(name) == 4:
		full, k = "cseq", hCSeq
	case c == 'c' && len(name) == 14:
		full, k = "content-length", hContentLength
	case c == 'r' && len(name) == 5:
		full, k = "route", hAddrList
	case c == 'r' && len(name) == 12:
		full, k = "record-route", hAddrList
	case c == 'r' && len(name) == 8:
		full, k = "refer-to", hAddrList
	case c == 'r' && len(name) == 11:
		full, k = "referred-by", hAddrList
	case c == 'm' && len(name) == 12:
		full, k = "max-forwards", hMaxForwards
	default:
		return hOther
	}
	if !bytes.EqualFold(name, []byte(full)) {
		return hOther
	}
	return k
}

// single is the single-value header index of a kind (-1: the header may repeat).
func (k hdrKind) single() int {
	switch k {
	case hFrom:
		return sFrom
	case hTo:
		return sTo
	case hCallID:
		return sCallID
	case hCSeq:
		return sCSeq
	case hMaxForwards:
		return sMaxForwards
	case hContentLength:
		return sContentLength
	}
	return -1
}

// sameSingle compares a repeated single-value header with its first copy: numbers by value (Content-Length
// "05" is 5), the others byte for byte. Content-Length against its compact form l: is a "mismatch".
func sameSingle(k int, a, b []byte, aCompact, bCompact bool) error {
	same := bytes.Equal(a, b)
	if k == sMaxForwards || k == sContentLength {
		x, okA := atoiBytes(a)
		y, okB := atoiBytes(b)
		same = okA && okB && x == y || same
	}
	if same {
		return nil
	}
	if k == sContentLength && aCompact != bCompact {
		return &rejectError{code: 400, reason: "Content-Length mismatch", kind: rejCLMismatch,
			err: fmt.Errorf("%q and %q", clip(a), clip(b))}
	}
	return &rejectError{code: 400, reason: duplicateReasons[k], kind: rejDuplicate,
		err: fmt.Errorf("%q and %q", clip(a), clip(b))}
}

// topViaOK checks what a reply to the request needs from its top Via (RFC 3261 §18.2.2, RFC 3581): a
// sent-by host, a port that is a port, rport and received with usable values. A request failing it cannot
// be answered, so it is dropped (and counted) rather than rejected.
func topViaOK(v []byte) bool {
	for range 2 { // "SIP / 2.0 /"
		i := bytes.IndexByte(v, '/')
		if i < 0 {
			return false
		}
		v = v[i+1:]
	}
	v = bytes.TrimLeft(v, " \t")
	i := bytes.IndexAny(v, " \t")
	if i <= 0 {
		return false // no transport, or nothing after it
	}
	v = v[i:]
	params := []byte(nil)
	if semi := bytes.IndexByte(v, ';'); semi >= 0 {
		v, params = v[:semi], v[semi:]
	}
	if !sentByOK(bytes.TrimSpace(v)) {
		return false
	}
	for len(params) > 0 { // ";name[=value]..."
		params = params[1:]
		end := bytes.IndexByte(params, ';')
		if end < 0 {
			end = len(params)
		}
		k, val, hasVal := bytes.Cut(params[:end], []byte("="))
		k, val = bytes.TrimSpace(k), bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(k, []byte("rport")):
			if hasVal {
				if p, ok := atoiBytes(val); !ok || p < 1 || p > 65535 {
					return false
				}
			}
		case bytes.EqualFold(k, []byte("received")):
			if len(val) == 0 {
				return false
			}
		}
		params = params[end:]
	}
	return true
}

// sentByOK: host[:port] or [IPv6][:port]; a host of name characters, a port of 1..65535.
func sentByOK(s []byte) bool {
	var port []byte
	hasPort := false
	if len(s) > 0 && s[0] == '[' {
		end := bytes.IndexByte(s, ']')
		if end < 2 {
			return false
		}
		for _, c := range s[1:end] {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f') {
				return false
			}
		}
		rest := s[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		var host []byte
		host, port, hasPort = bytes.Cut(s, []byte(":"))
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if !(c == '.' || c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z') {
				return false
			}
		}
	}
	if hasPort {
		p, ok := atoiBytes(port)
		return ok && p >= 1 && p <= 65535
	}
	return true
}

// clip shortens what goes into an error (and the log) from a hostile message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

func isHeader(name []byte, full string, compact byte) bool {
	if len(name) == 1 {
		return compact != 0 && (name[0]|0x20) == compact
	}
	return len(name) == len(full) && bytes.EqualFold(name, []byte(full))
}

// requestLine checks a request line as sipgo reads it: three parts split at the first two spaces, the last
// (the version) starting with "SIP" and without spaces, the Request-URI well-formed and not "*".
func requestLine(line []byte) bool {
	uri, ver, ok := split3(line)
	if !ok || len(ver) < 3 || bytes.IndexByte(ver, ' ') >= 0 || !(string(ver[:3]) == "SIP" || string(ver[:3]) == "sip") {
		return false
	}
	return uriOK(uri) && string(uri) != "*"
}

// split3 splits a start line at its first two spaces, as sipgo does.
func split3(line []byte) (second, third []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, nil, false
	}
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return nil, nil, false
	}
	return rest[:sp2], rest[sp2+1:], true
}

// statusLine parses a status line as sipgo reads it: "SIP/2.0 code reason", the code a 16-bit number, the
// reason (possibly empty) the rest of the line.
func statusLine(line []byte) (int, []byte, bool) {
	codeText, reason, ok := split3(line)
	if !ok {
		return 0, nil, false
	}
	code, ok := atoiBytes(codeText)
	if !ok || code > 65535 {
		return 0, nil, false
	}
	return code, reason, true
}

// cseqParts splits a CSeq value "number method" as sipgo does: the number (at most 2^31-1) up to the first
// white space, the method the rest (at least one character).
func cseqParts(v []byte) (int, []byte, bool) {
	i := bytes.IndexAny(v, " \t")
	if i < 1 || len(v)-i < 2 {
		return 0, nil, false
	}
	n, ok := atoiBytes(v[:i])
	if !ok || n > 1<<31-1 {
		return 0, nil, false
	}
	return n, bytes.TrimLeft(v[i+1:], " \t"), true
}

// atoiBytes parses an unsigned 32-bit decimal, as sipgo reads CSeq, Max-Forwards and Content-Length
// (a CSeq number has a lower bound still, see cseqParts).
func atoiBytes(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 1<<32-1 {
			return 0, false
		}
	}
	return n, true
}

// viasOK checks every value of a Via header line.
func viasOK(v []byte) bool {
	for len(v) > 0 {
		end := bytes.IndexByte(v, ',') // as sipgo splits Via values: at every comma
		if end < 0 {
			end = len(v)
		}
		if !viaOK(bytes.TrimSpace(v[:end])) {
			return false
		}
		if end >= len(v) {
			return true
		}
		v = v[end+1:]
	}
	return false
}

// viaOK checks one Via value as sipgo reads it: protocol name and version each up to a '/', the transport
// up to white space, then the sent-by, an IPv6 reference closed.
func viaOK(v []byte) bool {
	for range 2 {
		i := bytes.IndexByte(v, '/')
		if i < 0 {
			return false
		}
		v = v[i+1:]
	}
	i := bytes.IndexAny(v, " \t")
	if i < 0 {
		return false
	}
	v = v[i+1:]
	if len(v) > 0 && v[0] == '[' { // sipgo checks the IPv6 reference is closed; it takes any port text
		return bytes.IndexByte(v, ']') > 0
	}
	return true
}

// hostPortOK checks a URI's host[:port] (port digits, an IPv6 reference closed); the host part ends at ';'
// or '?', as sipgo reads it.
func hostPortOK(s []byte, uri bool) bool {
	if s[0] == '[' {
		gt := bytes.IndexByte(s[:min(len(s), 42)], ']')
		if gt <= 0 {
			return false
		}
		s = s[gt+1:]
		if len(s) == 0 || s[0] != ':' {
			return true
		}
		return portOK(s[1:], uri)
	}
	for i, c := range s {
		switch {
		case c == '[' && uri:
			return hostPortOK(s[i:], uri)
		case c == ':':
			return portOK(s[i+1:], uri)
		case (c == ';' || c == '?') && uri:
			return true
		}
	}
	return true
}

func portOK(s []byte, uri bool) bool {
	if uri {
		if i := bytes.IndexAny(s, ";?"); i >= 0 {
			s = s[:i]
		}
	}
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') { // strconv.Atoi's sign, which sipgo accepts
		s = s[1:]
	}
	_, ok := atoiBytes(s)
	return ok
}

// uriOK checks a URI as sipgo's parser will read it: at least three characters with a scheme, and
// for sip/sips a host with a numeric port.
func uriOK(s []byte) bool {
	if len(s) < 3 {
		return string(s) == "*"
	}
	colon := -1
	for i, c := range s {
		if c == ':' {
			colon = i
			break
		}
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') { // sipgo's scheme: letters only
			return false
		}
	}
	if colon < 0 {
		return false
	}
	if sc := s[:colon]; !bytes.EqualFold(sc, []byte("sip")) && !bytes.EqualFold(sc, []byte("sips")) {
		return true
	}
	s = bytes.TrimPrefix(s[colon+1:], []byte("//"))
	for i, c := range s {
		if c == '[' {
			s = s[i:]
			break
		}
		if c == '@' {
			s = s[i+1:]
			break
		}
	}
	if len(s) == 0 {
		return true
	}
	return hostPortOK(s, true)
}

// nameAddrOK checks a From/To value as rawsip.NameAddr splits it (without allocating): a name-addr with
// its <URI> closed, or an addr-spec; the URI well-formed and not the wildcard.
func nameAddrOK(v []byte) bool {
	in := false
	for i := 0; i < len(v); i++ {
		switch {
		case in && v[i] == '\\':
			i++
		case v[i] == '"':
			in = !in
		case !in && v[i] == '<':
			gt := bytes.IndexByte(v[i:], '>')
			return gt > 1 && addrURIOK(v[i+1:i+gt]) // as sipgo: no space inside <>
		case !in && v[i] == ';': // addr-spec: its parameters are the header's
			return addrURIOK(bytes.TrimSpace(v[:i]))
		}
	}
	return !in && addrURIOK(bytes.TrimSpace(v))
}

func addrURIOK(u []byte) bool {
	return len(u) > 0 && uriOK(u) && !bytes.HasSuffix(u, []byte("@*")) && string(u) != "*"
}

// addrListOK checks a comma-separated list of name-addrs (Contact, Route, Record-Route); a Contact may be
// "*" (whether "*" is allowed there is the registrar's to say).
func addrListOK(v []byte, contact bool) bool {
	in, angle, start := false, false, 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) {
			switch c := v[i]; {
			case in && c == '\\':
				i++
				continue
			case c == '"':
				in = !in
				continue
			case !in && c == '<':
				angle = true
				continue
			case !in && c == '>':
				angle = false
				continue
			case in || angle || c != ',':
				continue
			}
		}
		el := bytes.TrimSpace(v[start:min(i, len(v))])
		if !(contact && string(el) == "*") && !nameAddrOK(el) {
			return false
		}
		start = i + 1
	}
	return true
}
