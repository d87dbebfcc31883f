package engine

import (
	"bytes"
	"encoding/hex"
	"hash/crc32"
	"net/netip"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine/rawsip"
)

// Reason returns the default reason phrase of a status code.
func Reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	switch code / 100 {
	case 1:
		return "Trying"
	case 2:
		return "OK"
	case 3:
		return "Redirect"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	}
	return "Global Failure"
}

var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
	200: "OK", 202: "Accepted", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
	305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
	403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
	414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
	420: "Bad Extension", 421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
	485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
	493: "Undecipherable", 500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli) // read-only after init

// appendToTag appends the To-tag of a stateless reply: a per-process prefix and a hash of what identifies the request,
// so a retransmission gets the same tag; the form is Kamailio's: 32 hex, '.', 8 hex.
func (m *Msg) appendToTag(dst []byte) []byte {
	// CRC-32C (hardware-accelerated) rather than FNV-1a, which hashes a byte at a time: this was a fifth
	// of building a stateless reply. Deterministic, so the tag stays stable across restarts.
	var s uint32
	for _, name := range [...]string{"call-id", "from", "cseq"} {
		if v, ok := m.Raw.Value(m.Buf, name); ok {
			s = crc32.Update(s, castagnoli, v)
		}
	}
	if v, ok := m.Raw.Value(m.Buf, "via"); ok {
		s = crc32.Update(s, castagnoli, v[:rawsip.FirstValueEnd(v)])
	}
	var sum [4]byte
	sum[0], sum[1], sum[2], sum[3] = byte(s>>24), byte(s>>16), byte(s>>8), byte(s)
	dst = append(dst, m.E.tagPrefix...)
	dst = append(dst, '.')
	return hex.AppendEncode(dst, sum[:])
}

// viaWithReceived returns the first Via value with received/rport set per RFC 3261 §18.2.1 and RFC 3581,
// as Kamailio writes them: received appended when the sent-by host is not the source address or the Via has
// rport or received; rport filled in place when the client asked for it, appended for force_rport.
func viaWithReceived(v string, src netip.AddrPort, forceRport bool) string {
	bp := getBuf() // scratch from the pool: the string is the one allocation
	b := appendViaWithReceived((*bp)[:0], v, src, forceRport)
	out := string(b)
	*bp = b
	putBuf(bp)
	return out
}

// appendViaWithReceived is viaWithReceived appending to dst: a stateless reply writes its Via without
// building strings.
func appendViaWithReceived(dst []byte, v string, src netip.AddrPort, forceRport bool) []byte {
	first, rest := v, ""
	if i := rawsip.FirstValueEndString(v); i < len(v) {
		first, rest = v[:i], v[i:]
	}
	sentBy, params, host := splitVia(first)

	dst = append(dst, sentBy...)
	_, rs, re, hasRport := rawsip.Param(params, "rport")
	switch {
	case hasRport:
		dst = append(dst, params[:rs]...)
		dst = append(dst, ";rport="...)
		dst = strconv.AppendInt(dst, int64(src.Port()), 10)
		dst = append(dst, params[re:]...)
	case forceRport:
		dst = append(dst, params...)
		dst = append(dst, ";rport="...)
		dst = strconv.AppendInt(dst, int64(src.Port()), 10)
	default:
		dst = append(dst, params...)
	}
	// Kamailio keeps an existing received and appends the new one last; the last one is what counts.
	_, _, _, hasRecv := rawsip.Param(params, "received")
	if hasRport || hasRecv || !sameHost(host, src.Addr()) {
		dst = append(dst, ";received="...)
		dst = src.Addr().Unmap().AppendTo(dst)
	}
	return append(dst, rest...)
}

// splitVia splits the first value of a Via into "SIP/2.0/UDP host:port" (sent-by with its protocol), the
// parameters (from the first ';') and the bare host (no port, no IPv6 brackets).
func splitVia(first string) (sentBy, params, host string) {
	sentBy = first
	if i := strings.IndexByte(first, ';'); i >= 0 {
		sentBy, params = first[:i], first[i:]
	}
	host = strings.TrimSpace(sentBy)
	if i := strings.LastIndexAny(host, " \t"); i >= 0 {
		host = host[i+1:]
	}
	host, _, _ = SplitHostPort(host)
	return sentBy, params, strings.Trim(host, "[]")
}

func sameHost(host string, ip netip.Addr) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap() == ip.Unmap()
}

// BuildReply appends a stateless reply to the request to dst (RFC 3261 §8.2.6): Via (received/rport on
// the first), From, To (with a tag), Call-ID, CSeq and (for 180-299) Record-Route copied as received, in
// the request's order, then the script's reply headers, Server and Content-Length — what Kamailio's sl sends.
func (m *Msg) BuildReply(dst []byte, code int, reason string, body []byte, contentType string) []byte {
	buf := m.Buf
	if body == nil {
		body = m.ReplyBody
	}
	if dst == nil { // sized once (the copied headers are at most the request's): appending grew it three times
		dst = make([]byte, 0, m.Raw.HdrsEnd+len(reason)+len(m.ReplyHdrs)+len(body)+len(contentType)+128)
	}
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	firstVia := true
	for _, h := range m.Raw.Hdrs {
		switch {
		case h.Is(buf, "via"):
			if firstVia {
				firstVia = false
				dst = append(dst, buf[h.Start:h.VStart]...)
				// A string view of the received bytes, not a copy (one allocation per reply saved): it does
				// not outlive the call, which copies what it writes into dst, and buf is not written meanwhile.
				v := h.Value(buf)
				dst = appendViaWithReceived(dst, rawsip.View(v), m.Src, m.ForceRport)
				dst = append(dst, "\r\n"...)
				continue
			}
		case h.Is(buf, "to"):
			v := h.Value(buf)
			dst = append(dst, buf[h.Start:h.VEnd]...)
			if code > 100 && !hasTag(v) {
				dst = append(dst, ";tag="...)
				dst = m.appendToTag(dst)
			}
			dst = append(dst, "\r\n"...)
			continue
		case h.Is(buf, "record-route"):
			if code < 180 || code > 299 { // only replies that can establish a dialog carry it
				continue
			}
		case h.Is(buf, "from"), h.Is(buf, "call-id"), h.Is(buf, "cseq"):
		default:
			continue
		}
		dst = append(dst, buf[h.Start:h.VEnd]...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, m.ReplyHdrs...)
	if sh := m.E.cfg.Core.ServerHeader; sh != "" {
		dst = append(dst, "Server: "...)
		dst = append(dst, sh...)
		dst = append(dst, "\r\n"...)
	}
	if len(body) > 0 && contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, contentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// ToTag returns the tag parameter of the To header, read on the raw bytes (no full parse): KSR's
// has_totag asks it of every request.
func (m *Msg) ToTag() (string, bool) { return m.tagOf("to") }

// FromTag returns the tag parameter of the From header, read on the raw bytes (rr's ftag).
func (m *Msg) FromTag() (string, bool) { return m.tagOf("from") }

func (m *Msg) tagOf(hdr string) (string, bool) {
	tag, ok := m.tagViewOK(hdr)
	return strings.Clone(tag), ok // the caller may keep it; the buffer is reused
}

// HasToTag reports whether the To header has a non-empty tag (has_totag), without allocating.
func (m *Msg) HasToTag() bool { return m.tagView("to") != "" }

// tagView is the tag of header hdr (from, to) as a view of the buffer: valid until the message is recycled.
func (m *Msg) tagView(hdr string) string { t, _ := m.tagViewOK(hdr); return t }

func (m *Msg) tagViewOK(hdr string) (string, bool) {
	v, ok := m.Raw.Value(m.Buf, hdr)
	if !ok {
		return "", false
	}
	tag, _, _, ok := rawsip.Param(rawsip.View(v[paramsStart(v):]), "tag")
	return tag, ok
}

func hasTag(to []byte) bool {
	_, _, _, ok := rawsip.Param(string(to[paramsStart(to):]), "tag")
	return ok
}

// paramsStart skips a name-addr's <uri> so that URI parameters are not taken for header parameters.
func paramsStart(v []byte) int {
	if i := bytes.IndexByte(v, '>'); i >= 0 {
		return i
	}
	return 0
}

// SendReply sends a stateless reply to the request: to the source address and port for an rport Via, on
// the connection the request came on (TCP), otherwise to the Via per RFC 3261 §18.2.2.
func (m *Msg) SendReply(code int, reason string) error {
	return m.SendReplyBody(code, reason, nil, "")
}

// SendReplyBody is SendReply with a body.
func (m *Msg) SendReplyBody(code int, reason string, body []byte, contentType string) error {
	if !m.IsRequest() {
		return errNotRequest
	}
	if m.IsAck() {
		return nil // ACK is never answered
	}
	bp := getBuf()
	out := m.BuildReply((*bp)[:0], code, reason, body, contentType)
	err := m.E.sendReplyBytes(m, out)
	*bp = out
	putBuf(bp)
	if err == nil {
		m.Replied = true
		m.E.stats.replySent(OriginLocal, code)
	}
	return err
}
