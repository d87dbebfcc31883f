package textops

import (
	"encoding/hex"
	"strings"

	"github.com/siplua/siplua/engine"
)

// Multipart bodies. Kamailio edits them with lumps and, because a message with a changed multipart body is
// flagged, rewrites every boundary line when it sends the message (check_boundaries: "--b" on every
// delimiter, "--b--" on the last). Here each function computes the new body text, normalises the
// boundaries the same way, and records one edit replacing the body; a later multipart call replaces that
// edit, so the calls compose as Kamailio's do.

const defaultBoundary = "unique-boundary-1"

// bodyState is textops' per-message state: the body as the multipart functions left it.
type bodyState struct {
	body string
	mark int // the edit index of the body replacement
}

func state(m *engine.Msg) *bodyState {
	if st, ok := m.ModState("textops").(*bodyState); ok {
		return st
	}
	return nil
}

// currentBody is the body as previous multipart calls left it (the received one at first).
func currentBody(m *engine.Msg) string {
	if st := state(m); st != nil {
		return st.body
	}
	if m.Raw.Body >= len(m.Buf) {
		return ""
	}
	return string(m.Buf[m.Raw.Body:])
}

// replaceBodyText records body as the new body, dropping the previous multipart replacement when it is the
// last edit.
func replaceBodyText(m *engine.Msg, body string) {
	if st := state(m); st != nil && m.EditMark() == st.mark+1 {
		m.EditRestore(st.mark)
	}
	mark := m.EditMark()
	m.AddEdit(m.Raw.Body, len(m.Buf), body)
	m.SetModState("textops", &bodyState{body: body, mark: mark})
}

// boundary returns the boundary parameter of the Content-Type, "" when none.
func boundary(ct string) string {
	_, params, ok := strings.Cut(ct, ";")
	if !ok {
		return ""
	}
	for _, p := range strings.Split(params, ";") {
		n, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(n), "boundary") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// part is one part of a multipart body.
type part struct {
	ctype   string
	content string
}

// parts splits a multipart body at its boundary lines.
func parts(ct, body string) []part {
	b := boundary(ct)
	if b == "" {
		return nil
	}
	var out []part
	for _, chunk := range strings.Split(body, "--"+b)[1:] {
		if strings.HasPrefix(chunk, "--") {
			break
		}
		chunk = strings.TrimPrefix(strings.TrimPrefix(chunk, "\r"), "\n")
		hdrs, content, ok := strings.Cut(chunk, "\r\n\r\n")
		if !ok {
			continue
		}
		p := part{content: strings.TrimSuffix(content, "\r\n")}
		for _, l := range strings.Split(hdrs, "\r\n") {
			if n, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(n), "content-type") {
				p.ctype = strings.TrimSpace(v)
			}
		}
		out = append(out, p)
	}
	return out
}

// fixBoundaries is Kamailio's check_boundaries: every line starting with "--b" becomes "--b\r\n", the
// last one "--b--\r\n".
func fixBoundaries(body, b string) string {
	lines := strings.SplitAfter(body, "\n")
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "--"+b) {
			last = i
		}
	}
	if last < 0 {
		return body
	}
	var sb strings.Builder
	for i, l := range lines {
		switch {
		case i == last:
			sb.WriteString("--" + b + "--\r\n")
		case strings.HasPrefix(l, "--"+b):
			sb.WriteString("--" + b + "\r\n")
		default:
			sb.WriteString(l)
		}
		if i == last {
			break
		}
	}
	return sb.String()
}

// generateBoundary is Kamailio's generate_boundary: [--b CRLF] Content-Type, [Content-Disposition], an empty
// line, the text (with a CRLF unless it ends in an empty line) and the closing --b CRLF.
func generateBoundary(txt, ct, cd, b string, initial bool) string {
	var s strings.Builder
	if initial {
		s.WriteString("--" + b + "\r\n")
	}
	s.WriteString("Content-Type: " + ct + "\r\n")
	if cd != "" {
		s.WriteString("Content-Disposition: " + cd + "\r\n")
	}
	s.WriteString("\r\n")
	s.WriteString(txt)
	if !strings.HasSuffix(txt, "\r\n\r\n") {
		s.WriteString("\r\n")
	}
	s.WriteString("--" + b + "\r\n")
	return s.String()
}

func isMultipart(m *engine.Msg) (string, bool) {
	ct, ok := m.Header("content-type")
	if !ok {
		return "", false
	}
	mt, _ := mimeType(ct)
	return ct, strings.HasPrefix(mt, "multipart/")
}

// setBodyMultipart is ki_set_multibody: with a body, make it the only part; without, turn the current body
// into the first part of a multipart/mixed body (a body that is already multipart is left alone).
func setBodyMultipart(m *engine.Msg, body, ctype, bnd string) int {
	_, multi := isMultipart(m)
	if multi && body == "" {
		return 1
	}
	if ctype == "" {
		ctype = "text/plain"
	}
	if bnd == "" {
		bnd = defaultBoundary
	}
	if strings.HasPrefix(bnd, "-") {
		return -1
	}
	old := currentBody(m)
	m.DropEditsFrom(m.Raw.Body) // earlier body changes go, as in Kamailio
	m.DelModState("textops")
	var nb string
	switch {
	case body != "":
		nb = generateBoundary(body, ctype, "", bnd, true)
	case old != "":
		oct := ctype
		if v, ok := m.Header("content-type"); ok && v != "" {
			oct = v
		}
		nb = generateBoundary(old, oct, "", bnd, true)
	default:
		return -1
	}
	end := m.Raw.HdrsEnd
	if !multi {
		if i := m.Raw.Find(m.Buf, "content-type"); i >= 0 {
			h := m.Raw.Hdrs[i]
			m.AddEdit(int(h.Start), int(h.End), "")
		}
		m.AddEdit(end, end, "Content-Type: multipart/mixed;boundary=\""+bnd+"\"\r\n")
	}
	if m.Raw.Find(m.Buf, "content-length") < 0 {
		m.AddEdit(end, end, "Content-Length: "+itoa(len(nb))+"\r\n")
	}
	if !multi {
		m.AddEdit(end, end, "Mime-Version: 1.0\r\n")
	}
	// Kamailio 5.6.3 sends this body as built: its closing delimiter stays "--b", not "--b--"
	replaceBodyText(m, nb)
	return 1
}

// appendBodyPart adds a part at the end of a multipart/mixed body (txt hex-encoded with hexa).
func appendBodyPart(m *engine.Msg, txt, ct, cd string, hexa bool) int {
	if hexa {
		raw, err := hex.DecodeString(strings.Join(strings.Fields(txt), ""))
		if err != nil {
			return -1
		}
		txt = string(raw)
	}
	if txt == "" || ct == "" {
		return -1
	}
	body := currentBody(m)
	if body == "" {
		return -1
	}
	mct, ok := m.Header("content-type")
	if !ok {
		return -1
	}
	if mt, _ := mimeType(mct); mt != "multipart/mixed" {
		return -1
	}
	b := boundary(mct)
	if b == "" {
		return -1
	}
	replaceBodyText(m, fixBoundaries(body+generateBoundary(txt, ct, cd, b, false), b))
	return 1
}

// partSpan finds the part whose Content-Type line is exactly ctype: the start of that line, the end of
// that line, and the start and end of the next boundary line (Kamailio's scanning).
func partSpan(body, ctype, b string) (ctStart, ctEnd, bStart, bEnd int, ok bool) {
	pos := 0
	for pos < len(body) {
		i := indexLineStart(body, pos, "Content-Type: ")
		if i < 0 {
			return 0, 0, 0, 0, false
		}
		v := i + len("Content-Type: ")
		if len(body)-v > len(ctype)+2 && strings.EqualFold(body[v:v+len(ctype)], ctype) {
			e := v + len(ctype)
			if body[e:e+2] != "\r\n" {
				return 0, 0, 0, 0, false
			}
			e += 2
			bs := indexLineStart(body, e, "--"+b)
			if bs < 0 {
				return 0, 0, 0, 0, false
			}
			be := strings.IndexByte(body[bs:], '\n')
			if be < 0 {
				be = len(body)
			} else {
				be += bs + 1
			}
			return i, e, bs, be, true
		}
		pos = v
	}
	return 0, 0, 0, 0, false
}

// indexLineStart finds prefix at the start of a line at or after from.
func indexLineStart(s string, from int, prefix string) int {
	for from <= len(s) {
		i := strings.Index(s[from:], prefix)
		if i < 0 {
			return -1
		}
		i += from
		if i == 0 || s[i-1] == '\n' {
			return i
		}
		from = i + 1
	}
	return -1
}

// removeBodyPart removes the part of type ctype: its headers from Content-Type through the next boundary.
func removeBodyPart(m *engine.Msg, ctype string) int {
	body := currentBody(m)
	ct, multi := isMultipart(m)
	if body == "" || !multi {
		return -1
	}
	b := boundary(ct)
	s, _, _, be, ok := partSpan(body, ctype, b)
	if !ok || b == "" {
		return -1
	}
	replaceBodyText(m, fixBoundaries(body[:s]+body[be:], b))
	return 1
}

// filterBody keeps only the content of the first part of type ctype.
func filterBody(m *engine.Msg, ctype string) int {
	body := currentBody(m)
	ct, multi := isMultipart(m)
	if body == "" || !multi {
		return -1
	}
	b := boundary(ct)
	_, e, bs, _, ok := partSpan(body, ctype, b)
	if !ok || b == "" {
		return -1
	}
	for e < len(body) && (body[e] == '\r' || body[e] == '\n') {
		e++
	}
	if bs < e+2 {
		return -1
	}
	replaceBodyText(m, body[e:bs-2])
	return 1
}

// getBodyPart sets the pseudo-variable pv to the content of the part of type ctype (raw: with its
// headers and the closing boundary line); a body that is not multipart is returned whole.
func getBodyPart(m *engine.Msg, ctype, pv string, raw bool) int {
	body := currentBody(m)
	if body == "" {
		return -1
	}
	ct, multi := isMultipart(m)
	b := boundary(ct)
	if !multi || b == "" {
		return ret(pvSet(m, pv, engine.StrVal(body)))
	}
	s, e, bs, be, ok := partSpan(body, ctype, b)
	if !ok {
		return -1
	}
	v := body[e:bs]
	if raw {
		v = body[s:be]
	}
	return ret(pvSet(m, pv, engine.StrVal(v)))
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
