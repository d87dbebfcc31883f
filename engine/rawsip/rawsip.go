// Package rawsip locates the parts of a SIP message in its received bytes.
//
// It is the engine's one parse layer: the worker scans every message here and checks it on these positions;
// sipgo parses a message only when a function needs typed headers (engine.Msg.Request). What the proxy sends
// (stateless replies, relayed requests and replies) is built from the bytes it received plus a list of
// edits, as Kamailio does with its lumps: headers keep their form, order and compact names, and nothing is
// re-serialised that was not changed.
package rawsip

import (
	"bytes"
	"errors"
	"math"
	"strings"
)

// Hdr is one header line (with its continuation lines) in a message buffer. The offsets are int32: a
// message is at most 64 KiB (udp_read_size, and the TCP frame limit), and a transaction keeps its
// request's headers for wt_timer, so int offsets doubled what they cost (40 B a header instead of 20).
type Hdr struct {
	Start   int32 // first byte of the header name
	NameEnd int32
	VStart  int32 // value, trimmed of surrounding white space
	VEnd    int32
	End     int32 // first byte after the line's CRLF (or LF)
}

// Msg holds the positions of a message's parts in its buffer.
type Msg struct {
	FirstLineEnd int   // index of the CR/LF ending the start line
	Hdrs         []Hdr // in received order
	HdrsEnd      int   // first byte of the empty line that ends the headers
	Body         int   // first byte of the body
}

var (
	ErrNoHeaderEnd = errors.New("no empty line after the headers")
	ErrBadHeader   = errors.New("header line without a colon")
	ErrEmpty       = errors.New("empty message")
	ErrTooBig      = errors.New("message larger than 2 GiB")
)

// Scan fills m with the positions of buf's start line, headers and body, reusing m.Hdrs.
func Scan(buf []byte, m *Msg) error {
	m.Hdrs = m.Hdrs[:0]
	if len(buf) == 0 {
		return ErrEmpty
	}
	if len(buf) > math.MaxInt32 { // Hdr's offsets are int32
		return ErrTooBig
	}
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		return ErrNoHeaderEnd
	}
	m.FirstLineEnd = i
	if i > 0 && buf[i-1] == '\r' {
		m.FirstLineEnd = i - 1
	}
	pos := i + 1
	for {
		if pos >= len(buf) {
			return ErrNoHeaderEnd
		}
		if buf[pos] == '\n' {
			m.HdrsEnd, m.Body = pos, pos+1
			return nil
		}
		if buf[pos] == '\r' && pos+1 < len(buf) && buf[pos+1] == '\n' {
			m.HdrsEnd, m.Body = pos, pos+2
			return nil
		}
		h := Hdr{Start: int32(pos)}
		colon := -1
		end := pos
		for {
			nl := bytes.IndexByte(buf[end:], '\n')
			if nl < 0 {
				return ErrNoHeaderEnd
			}
			end += nl + 1
			if colon < 0 {
				colon = bytes.IndexByte(buf[pos:end], ':')
			}
			if end < len(buf) && (buf[end] == ' ' || buf[end] == '\t') {
				continue // folded continuation line
			}
			break
		}
		if colon < 0 {
			return ErrBadHeader
		}
		colon += pos
		h.End = int32(end)
		h.NameEnd = int32(colon)
		for h.NameEnd > h.Start && isSpace(buf[h.NameEnd-1]) {
			h.NameEnd--
		}
		h.VStart = int32(colon + 1)
		h.VEnd = int32(end)
		for h.VStart < h.VEnd && isWS(buf[h.VStart]) {
			h.VStart++
		}
		for h.VEnd > h.VStart && isWS(buf[h.VEnd-1]) {
			h.VEnd--
		}
		m.Hdrs = append(m.Hdrs, h)
		pos = end
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }
func isWS(c byte) bool    { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// Name returns the header's name as written.
func (h Hdr) Name(buf []byte) []byte { return buf[h.Start:h.NameEnd] }

// Value returns the header's value.
func (h Hdr) Value(buf []byte) []byte { return buf[h.VStart:h.VEnd] }

// Is reports whether the header is named name (case-insensitive; lower-case full name expected), counting
// its compact form.
func (h Hdr) Is(buf []byte, name string) bool {
	n := buf[h.Start:h.NameEnd]
	if len(n) == 1 {
		return Compact(n[0]) == name
	}
	return len(n) == len(name) && equalFoldASCII(n, name)
}

func equalFoldASCII(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// Compact maps a compact header letter to its lower-case full name (RFC 3261 §7.3.3 and later RFCs).
func Compact(c byte) string {
	switch c | 0x20 {
	case 'i':
		return "call-id"
	case 'm':
		return "contact"
	case 'e':
		return "content-encoding"
	case 'l':
		return "content-length"
	case 'c':
		return "content-type"
	case 'f':
		return "from"
	case 's':
		return "subject"
	case 'k':
		return "supported"
	case 't':
		return "to"
	case 'v':
		return "via"
	case 'r':
		return "refer-to"
	case 'b':
		return "referred-by"
	case 'o':
		return "event"
	case 'u':
		return "allow-events"
	case 'x':
		return "session-expires"
	case 'a':
		return "accept-contact"
	case 'j':
		return "reject-contact"
	case 'd':
		return "request-disposition"
	case 'y':
		return "identity"
	case 'n':
		return "identity-info"
	}
	return ""
}

// Value returns the value of the first header named name (lower-case full name, as Find), a view of buf;
// ok is false when there is none.
func (m *Msg) Value(buf []byte, name string) (v []byte, ok bool) {
	if i := m.Find(buf, name); i >= 0 {
		return m.Hdrs[i].Value(buf), true
	}
	return nil, false
}

// Find returns the index of the first header named name, or -1.
func (m *Msg) Find(buf []byte, name string) int {
	for i, h := range m.Hdrs {
		if h.Is(buf, name) {
			return i
		}
	}
	return -1
}

// FirstValueEnd returns the length of the first element of a comma-separated header value (Via, Route,
// Record-Route, Contact): the index of the first comma outside quotes and angle brackets, or len(v).
func FirstValueEnd(v []byte) int {
	// Most values hold one element: no comma at all means the first element is the whole value, found by
	// one vectorized search instead of a byte-by-byte walk (this runs several times per message).
	if bytes.IndexByte(v, ',') < 0 {
		return len(v)
	}
	return firstValueEnd(v)
}

// FirstValueEndString is FirstValueEnd for a string (no conversion, which would copy it).
func FirstValueEndString(v string) int {
	if strings.IndexByte(v, ',') < 0 {
		return len(v)
	}
	return firstValueEnd(v)
}

func firstValueEnd[T ~string | ~[]byte](v T) int {
	inQuote, inAngle := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case c == ',' && !inAngle:
			return i
		}
	}
	return len(v)
}

// SplitValues splits a comma-separated header value (Via, Contact, Route, auth parameters) at the commas
// outside quotes and angle brackets, as FirstValueEnd finds them; the parts keep their white space, so
// their lengths add up to the value's (one comma between each).
func SplitValues(v string) []string {
	var out []string
	for {
		end := FirstValueEndString(v)
		out = append(out, v[:end])
		if end >= len(v) {
			return out
		}
		v = v[end+1:]
	}
}

// RequestURI returns the start and end of the Request-URI in a request's start line.
func RequestURI(buf []byte, m *Msg) (int, int, bool) {
	line := buf[:m.FirstLineEnd]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return 0, 0, false
	}
	rest := line[sp+1:]
	sp2 := bytes.LastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return 0, 0, false
	}
	return sp + 1, sp + 1 + sp2, true
}

// NextParam reads the parameter of a ;-separated parameter list that follows position i (0 at first): its
// name and value without surrounding blanks (value empty for a flag parameter), the span of the whole
// ";name[=value]", and ok=false when there is none. The next call takes end as i. A quoted value may hold
// ';' and ','; the list ends at a ',' outside quotes (the next element of a header).
func NextParam(params string, i int) (name, val string, start, end int, ok bool) {
	semi := strings.IndexByte(params[i:], ';')
	if semi < 0 {
		return "", "", 0, 0, false
	}
	start = i + semi
	j := start + 1
	end = j
	for end < len(params) && params[end] != ';' && params[end] != ',' {
		if params[end] == '"' { // quoted value: skip to the closing quote
			if q := strings.IndexByte(params[end+1:], '"'); q >= 0 {
				end += q + 1
			}
		}
		end++
	}
	k, v, _ := strings.Cut(strings.TrimSpace(params[j:end]), "=")
	return strings.TrimSpace(k), strings.TrimSpace(v), start, end, true
}

// Param finds parameter name (lower case) in a ;-separated parameter list and returns its value
// (empty for a flag parameter), the span of the whole ";name[=value]" and whether it was found.
func Param(params string, name string) (val string, start, end int, ok bool) {
	for i := 0; i < len(params); i = end {
		var k string
		if k, val, start, end, ok = NextParam(params, i); !ok {
			return "", 0, 0, false
		}
		if strings.EqualFold(k, name) {
			return val, start, end, true
		}
	}
	return "", 0, 0, false
}
