package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine/rawsip"
)

// edit replaces Buf[off:end] with text when the message is sent on (Kamailio's lumps): the received bytes
// stay as they are, so header getters see the message as received, as in Kamailio.
type edit struct {
	off, end int
	text     string
	// fn, when set, gives the text for the socket the message leaves from (nil: not known yet), so that
	// Record-Route can name the outgoing socket and double itself when the message changes transport.
	fn func(out *Listener) string
}

// AddEdit records a change to the outgoing copy of the message.
func (m *Msg) AddEdit(off, end int, text string) {
	m.edits = append(m.edits, edit{off: off, end: end, text: text})
}

func (e edit) textFor(out *Listener) string {
	if e.fn != nil {
		return e.fn(out)
	}
	return e.text
}

// AddSocketEdit records a change whose text depends on the socket the message leaves from.
func (m *Msg) AddSocketEdit(off, end int, fn func(out *Listener) string) {
	m.edits = append(m.edits, edit{off: off, end: end, fn: fn})
}

// EditMark returns the number of edits so far; EditRestore drops those added after a mark (a branch route's
// changes apply to that branch only).
func (m *Msg) EditMark() int { return len(m.edits) }

// EditRestore drops the edits added after mark.
func (m *Msg) EditRestore(mark int) {
	if mark >= 0 && mark < len(m.edits) {
		m.edits = m.edits[:mark]
	}
}

// DropEditsFrom cancels the edits that start at or after off (textops set_body drops the earlier body
// changes, as Kamailio's del_nonshm_lump(&msg->body_lumps) does). The entries stay, as empty insertions, so
// EditMark/EditRestore indices keep their meaning.
func (m *Msg) DropEditsFrom(off int) {
	for i, e := range m.edits {
		if e.off >= off && e.fn == nil {
			m.edits[i] = edit{off: e.off, end: e.off}
		}
	}
}

// AppendHeader adds a header line (with or without CRLF) after the last header.
func (m *Msg) AppendHeader(line string) {
	m.AddEdit(m.Raw.HdrsEnd, m.Raw.HdrsEnd, withCRLF(line))
}

// InsertHeader adds a header line before the first header.
func (m *Msg) InsertHeader(line string) {
	off := m.Raw.HdrsEnd
	if len(m.Raw.Hdrs) > 0 {
		off = int(m.Raw.Hdrs[0].Start)
	}
	m.AddEdit(off, off, withCRLF(line))
}

// RemoveHeader removes every header named name and returns how many it removed.
func (m *Msg) RemoveHeader(name string) int {
	lname := HeaderName(name)
	n := 0
	for _, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			m.AddEdit(int(h.Start), int(h.End), "")
			n++
		}
	}
	return n
}

func withCRLF(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s
	}
	return strings.TrimRight(s, "\r\n") + "\r\n"
}

// appendOutgoing appends the message with its edits (and extra ones, e.g. a Via) to dst.
func (m *Msg) appendOutgoing(dst []byte, extra ...edit) []byte {
	return m.appendOutgoingFrom(dst, nil, extra...)
}

// appendOutgoingFrom is appendOutgoing for a message leaving from socket out (socket edits see it).
func (m *Msg) appendOutgoingFrom(dst []byte, out *Listener, extra ...edit) []byte {
	if len(m.edits)+len(extra) == 0 {
		return append(dst, m.Buf...)
	}
	// One working copy of the script's edits and the extra ones, sorted in place: on the stack while they
	// fit (a relayed request has a handful), so relaying allocates no edit slices (it cloned two).
	var stack [16]edit
	sorted := append(append(stack[:0], m.edits...), extra...)
	if cl, ok := m.bodyLengthEdit(sorted); ok {
		sorted = append(sorted, cl)
	}
	if !slices.IsSortedFunc(sorted, cmpEditOff) {
		slices.SortStableFunc(sorted, cmpEditOff)
	}
	pos := 0
	for _, e := range sorted {
		if e.off < pos { // overlaps an earlier removal: keep only what lies beyond it
			if e.end <= pos {
				dst = append(dst, e.textFor(out)...)
				continue
			}
			e.off = pos
		}
		dst = append(dst, m.Buf[pos:e.off]...)
		dst = append(dst, e.textFor(out)...)
		pos = e.end
	}
	return append(dst, m.Buf[pos:]...)
}

func cmpEditOff(a, b edit) int { return a.off - b.off }

// contentLengthEdit adds Content-Length when the message has none (needed on stream transports): the
// length of the body as sent, unless an edit (textops set_body) already adds the header.
func (m *Msg) contentLengthEdit() (edit, bool) {
	if m.Raw.Find(m.Buf, "content-length") >= 0 {
		return edit{}, false
	}
	n := len(m.Buf) - m.Raw.Body
	for _, e := range m.edits {
		if e.fn != nil {
			continue
		}
		if strings.HasPrefix(e.text, "Content-Length:") && e.off <= m.Raw.HdrsEnd {
			return edit{}, false
		}
		if e.off >= m.Raw.Body {
			n += len(e.text) - (e.end - e.off)
		}
	}
	return edit{off: m.Raw.HdrsEnd, end: m.Raw.HdrsEnd, text: "Content-Length: " + strconv.Itoa(n) + "\r\n"}, true
}

// bodyLengthEdit rewrites the Content-Length value when edits change the body's length (textops'
// set_body, replace_body...), as Kamailio's adjust_clen does for body lumps; no header, or an edit that
// already touches the header, leaves it alone.
func (m *Msg) bodyLengthEdit(edits []edit) (edit, bool) {
	body := m.Raw.Body
	if body > len(m.Buf) {
		return edit{}, false
	}
	delta, touched := 0, false
	for _, e := range edits {
		if e.off >= body && e.fn == nil {
			delta += len(e.text) - (e.end - e.off)
			touched = true
		}
	}
	if !touched || delta == 0 {
		return edit{}, false
	}
	i := m.Raw.Find(m.Buf, "content-length")
	if i < 0 {
		return edit{}, false
	}
	h := m.Raw.Hdrs[i]
	for _, e := range edits {
		if e.off < int(h.End) && e.end > int(h.Start) {
			return edit{}, false
		}
	}
	return edit{off: int(h.VStart), end: int(h.VEnd), text: strconv.Itoa(len(m.Buf) - body + delta)}, true
}

// ApplyChanges makes the edits so far part of the message (textopsx msg_apply_changes): the outgoing
// bytes (socket edits resolved for the receiving socket) become the message that getters read and later
// edits refer to.
func (m *Msg) ApplyChanges() error {
	if len(m.edits) == 0 {
		return nil
	}
	return m.SetBuffer(m.appendOutgoingFrom(nil, m.Local))
}

// SetBuffer replaces the message with buf (textopsx msg_set_buffer) and drops the pending edits; buf must
// scan as a SIP message of the same kind (request or reply), else nothing changes.
func (m *Msg) SetBuffer(buf []byte) error {
	var raw rawsip.Msg
	if err := rawsip.Scan(buf, &raw); err != nil {
		return fmt.Errorf("new message buffer: %w", err)
	}
	if bytes.HasPrefix(buf, []byte("SIP/")) != m.reply {
		return errors.New("new message buffer: request and reply cannot be swapped")
	}
	m.Buf, m.Raw, m.edits, m.ruri = buf, raw, m.edits[:0], ""
	m.sipMsg, m.parse = nil, parseNone
	return nil
}
