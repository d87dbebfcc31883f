package nathelper

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/siplua/siplua/engine"
)

// fix_nated_sdp flags.
const (
	sdpAddDirection  = 1 << iota // a=direction:active at the end of each media section
	sdpFixMediaIP                // c= addresses become the source (or given) address
	sdpAddNortpproxy             // the nortpproxy_str line at the end
	sdpFixOriginIP               // o= addresses become the source (or given) address
)

// fixNatedSDP is fix_nated_sdp(flags): 1 addresses replaced, 2 none replaced, -1 error (no SDP, an IPv6
// address, a c=/o= line asked for but missing).
func (n *Nathelper) fixNatedSDP(m *engine.Msg, flags int) int { return n.fixNatedSDPIP(m, flags, "") }

// fixNatedSDPIP is fix_nated_sdp(flags, ip): ip replaces the source address when not empty.
func (n *Nathelper) fixNatedSDPIP(m *engine.Msg, flags int, ip string) int {
	body := m.Body()
	if len(body) == 0 {
		return -1
	}
	if ct, ok := m.Header("content-type"); ok && !bytes.HasPrefix(bytes.ToLower(bytes.TrimSpace([]byte(ct))), []byte("application/sdp")) {
		return -1
	}
	end := len(body) // the body without its trailing line ends: lines are added before them
	for end > 0 && (body[end-1] == '\r' || body[end-1] == '\n') {
		end--
	}
	if end == 0 {
		return -1
	}
	newIP := m.Src.Addr().Unmap().String()
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return -1
		}
		newIP = ip
	}
	st := msgState(m)
	var edits []struct {
		off, end int
		text     string
	}
	add := func(off, e int, text string) {
		edits = append(edits, struct {
			off, end int
			text     string
		}{m.Raw.Body + off, m.Raw.Body + e, text})
	}
	count := 0
	var tail []byte
	for _, fix := range []struct {
		flag int
		line string
	}{{sdpFixMediaIP, "c="}, {sdpFixOriginIP, "o="}} {
		if flags&fix.flag == 0 {
			continue
		}
		found := false
		for off := 0; off < end; {
			le := bytes.IndexByte(body[off:end], '\n')
			next := end
			lineEnd := end
			if le >= 0 {
				lineEnd, next = off+le, off+le+1
			}
			line := bytes.TrimRight(body[off:lineEnd], "\r")
			if bytes.HasPrefix(line, []byte(fix.line)) {
				old, pos, ok := mediaIP(line)
				if !ok {
					return -1
				}
				found = true
				if old != "0.0.0.0" && old != newIP {
					if n.AppendSDPOldmediaip {
						tail = append(tail, "\r\na=oldmediaip:"+old...)
					}
					add(off+pos, off+pos+len(old), newIP)
					count++
				}
			}
			off = next
		}
		if !found {
			return -1
		}
	}
	if flags&sdpAddDirection != 0 {
		for i := bytes.Index(body[:end], []byte("\r\nm=")); i >= 0; {
			start := i + 4
			j := bytes.Index(body[start:end], []byte("\r\nm="))
			at := end
			if j >= 0 {
				at = start + j
			}
			add(at, at, "\r\na=direction:active")
			if j < 0 {
				break
			}
			i = at
		}
	}
	if flags&sdpAddNortpproxy != 0 && n.NortpproxyStr != "" {
		tail = append(tail, "\r\n"+n.NortpproxyStr...)
	}
	if len(tail) > 0 {
		add(end, end, string(tail))
	}
	delta := 0
	for _, e := range edits {
		m.AddEdit(e.off, e.end, e.text)
		delta += len(e.text) - (e.end - e.off)
	}
	n.fixContentLength(m, st, delta)
	if count > 0 {
		return 1
	}
	return 2
}

// mediaIP returns the address after "IP4" in a c= or o= line and its offset; an IPv6 one is an error,
// as in Kamailio.
func mediaIP(line []byte) (string, int, bool) {
	i := bytes.Index(line, []byte(" IP4 "))
	if i < 0 {
		return "", 0, false
	}
	pos := i + 5
	for pos < len(line) && line[pos] == ' ' {
		pos++
	}
	e := pos
	for e < len(line) && line[e] != ' ' && line[e] != '/' {
		e++
	}
	if e == pos {
		return "", 0, false
	}
	return string(line[pos:e]), pos, true
}

// fixContentLength keeps Content-Length right after body edits: one edit of its value, computed when the
// message is sent from the total change (Kamailio's lumps update it the same way).
func (n *Nathelper) fixContentLength(m *engine.Msg, st *state, delta int) {
	if delta == 0 {
		return
	}
	st.bodyDelta += delta
	if st.clEdited {
		return
	}
	i := m.Raw.Find(m.Buf, "content-length")
	if i < 0 {
		return
	}
	h := m.Raw.Hdrs[i]
	orig := len(m.Buf) - m.Raw.Body
	st.clEdited = true
	m.AddSocketEdit(int(h.VStart), int(h.VEnd), func(*engine.Listener) string { return strconv.Itoa(orig + st.bodyDelta) })
}
