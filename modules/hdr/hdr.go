// Package hdr is Kamailio's KSR.hdr core submodule: header getters on the message as received and header
// changes recorded as edits (lumps) that apply only to what is sent on, so hdr.get does not see them.
package hdr

import (
	"strings"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "hdr", Builtin: true, New: func() engine.Instance { return &Hdr{} }})
}

// Hdr has no parameters.
type Hdr struct{}

// Exports: KSR.hdr.*. Actions return 1 or -1 like Kamailio's; as there, remove/append_after/insert_before
// succeed when no header matches, and an empty header name is an error.
func (*Hdr) Exports() []engine.Export {
	return []engine.Export{
		{Name: "append", Fn: appendHdr},
		{Name: "insert", Fn: insertHdr},
		{Name: "remove", Fn: remove},
		{Name: "rmappend", Fn: func(m *engine.Msg, rm, add string) int { return both(remove(m, rm), appendHdr(m, add)) }},
		{Name: "rminsert", Fn: func(m *engine.Msg, rm, add string) int { return both(remove(m, rm), insertHdr(m, add)) }},
		{Name: "append_after", Fn: appendAfter},
		{Name: "insert_before", Fn: insertBefore},
		{Name: "is_present", Fn: isPresent},
		{Name: "get", Fn: get},
		{Name: "gete", Fn: func(m *engine.Msg, name string) string { s, _ := get(m, name); return s }},
		{Name: "getw", Fn: func(m *engine.Msg, name string) string { return orNull(get(m, name)) }},
		{Name: "get_idx", Fn: getIdx},
		{Name: "gete_idx", Fn: func(m *engine.Msg, name string, i int) string { s, _ := getIdx(m, name, i); return s }},
		{Name: "getw_idx", Fn: func(m *engine.Msg, name string, i int) string { return orNull(getIdx(m, name, i)) }},
		{Name: "append_to_reply", Fn: appendToReply},
		{Name: "match_content", Fn: matchContent}, // more.go
	}
}

func both(a, b int) int {
	if a < 0 {
		return a
	}
	return b
}

func orNull(s string, ok bool) string {
	if ok {
		return s
	}
	return "<null>"
}

// validName is what Kamailio's header-name parser accepts here: a token, no colon or white space.
func validName(name string) bool {
	return name != "" && !strings.ContainsAny(name, ": \t\r\n")
}

func appendHdr(m *engine.Msg, line string) int {
	if line != "" {
		m.AppendHeader(line)
	}
	return 1
}

func insertHdr(m *engine.Msg, line string) int {
	if line != "" {
		m.InsertHeader(line)
	}
	return 1
}

// remove deletes every header named name from the forwarded message (1 even when none matched).
func remove(m *engine.Msg, name string) int {
	if !validName(name) {
		return -1
	}
	m.RemoveHeader(name)
	return 1
}

// appendAfter adds line after the first header named name; nothing is added when there is none.
func appendAfter(m *engine.Msg, line, name string) int {
	if !validName(name) {
		return -1
	}
	if i := m.Raw.Find(m.Buf, engine.HeaderName(name)); i >= 0 && line != "" {
		end := m.Raw.Hdrs[i].End
		m.AddEdit(int(end), int(end), crlf(line))
	}
	return 1
}

// insertBefore adds line before the first header named name; nothing is added when there is none.
func insertBefore(m *engine.Msg, line, name string) int {
	if !validName(name) {
		return -1
	}
	if i := m.Raw.Find(m.Buf, engine.HeaderName(name)); i >= 0 && line != "" {
		start := m.Raw.Hdrs[i].Start
		m.AddEdit(int(start), int(start), crlf(line))
	}
	return 1
}

func crlf(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s
	}
	return strings.TrimRight(s, "\r\n") + "\r\n"
}

func isPresent(m *engine.Msg, name string) int {
	if !validName(name) {
		return -1
	}
	if m.Raw.Find(m.Buf, engine.HeaderName(name)) >= 0 {
		return 1
	}
	return -1
}

// get returns the first header's body as received ("" for an empty header), nil when absent.
func get(m *engine.Msg, name string) (string, bool) {
	if !validName(name) {
		return "", false
	}
	return m.Header(name)
}

// getIdx returns the i-th header named name (from 0; negative counts from the end).
func getIdx(m *engine.Msg, name string, i int) (string, bool) {
	if !validName(name) {
		return "", false
	}
	all := m.Headers(name)
	if i < 0 {
		i += len(all)
	}
	if i < 0 || i >= len(all) {
		return "", false
	}
	return all[i], true
}

// appendToReply adds a header to the replies this proxy generates for the message; an empty text is
// refused with -1, as Kamailio's add_lump_rpl.
func appendToReply(m *engine.Msg, line string) int {
	if line == "" {
		return -1
	}
	m.ReplyHdrs = append(m.ReplyHdrs, crlf(line)...)
	return 1
}
