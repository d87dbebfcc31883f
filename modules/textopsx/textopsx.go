// Package textopsx is Kamailio's textopsx module: applying the pending changes to the message, replacing
// it, changing a reply's status, header and body-line iterators, header value lists and fnmatch.
//
// Iterators live with the message (Kamailio keeps them per process, so a script that forgets to end one
// sees it again on the next message; here every message starts with none).
package textopsx

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "textopsx", New: func() engine.Instance { return &Textopsx{} }})
}

// Textopsx has no parameters.
type Textopsx struct{}

// Exports: KSR.textopsx.*, all 34 functions of Kamailio 5.6.
func (*Textopsx) Exports() []engine.Export {
	return []engine.Export{
		{Name: "msg_apply_changes", Fn: msgApplyChanges},
		{Name: "msg_set_buffer", Fn: msgSetBuffer},
		{Name: "change_reply_status", Fn: changeReplyStatus},
		{Name: "change_reply_status_code", Fn: func(m *engine.Msg, code int) int { return changeStatus(m, code, nil) }},
		{Name: "remove_body", Fn: removeBody},
		{Name: "keep_hf", Fn: func(m *engine.Msg) int { return keepHF(m, "") }},
		{Name: "keep_hf_re", Fn: keepHF},
		{Name: "fnmatch", Fn: func(_ *engine.Msg, val, pat string) int { return fnmatch(val, pat, "") }},
		{Name: "fnmatch_ex", Fn: func(_ *engine.Msg, val, pat, flags string) int { return fnmatch(val, pat, flags) }},
		{Name: "hf_iterator_start", Fn: hfStart},
		{Name: "hf_iterator_next", Fn: hfNext},
		{Name: "hf_iterator_prev", Fn: hfPrev},
		{Name: "hf_iterator_end", Fn: hfEnd},
		{Name: "hf_iterator_rm", Fn: hfRm},
		{Name: "hf_iterator_append", Fn: func(m *engine.Msg, it, text string) int { return hfAdd(m, it, text, true) }},
		{Name: "hf_iterator_insert", Fn: func(m *engine.Msg, it, text string) int { return hfAdd(m, it, text, false) }},
		{Name: "hf_iterator_hname", Fn: hfName},
		{Name: "hf_iterator_hbody", Fn: hfBody},
		{Name: "bl_iterator_start", Fn: blStart},
		{Name: "bl_iterator_next", Fn: blNext},
		{Name: "bl_iterator_end", Fn: blEnd},
		{Name: "bl_iterator_rm", Fn: blRm},
		{Name: "bl_iterator_append", Fn: func(m *engine.Msg, it, text string) int { return blAdd(m, it, text, true) }},
		{Name: "bl_iterator_insert", Fn: func(m *engine.Msg, it, text string) int { return blAdd(m, it, text, false) }},
		{Name: "bl_iterator_value", Fn: blValue},
		{Name: "append_hf_value", Fn: func(m *engine.Msg, hf, val string) int { return modifyHF(m, hf, val, opAppend) }},
		{Name: "insert_hf_value", Fn: func(m *engine.Msg, hf, val string) int { return modifyHF(m, hf, val, opInsert) }},
		{Name: "remove_hf_value", Fn: func(m *engine.Msg, hf string) int { return modifyHF(m, hf, "", opRemove) }},
		{Name: "assign_hf_value", Fn: func(m *engine.Msg, hf, val string) int { return modifyHF(m, hf, val, opAssign) }},
		{Name: "remove_hf_value2", Fn: func(m *engine.Msg, hf, _ string) int { return modifyHF(m, hf, "", opRemove2) }},
		{Name: "assign_hf_value2", Fn: func(m *engine.Msg, hf, val string) int { return modifyHF(m, hf, val, opAssign2) }},
		{Name: "include_hf_value", Fn: func(m *engine.Msg, hf, val string) int { return incExc(m, hf, val, opInclude) }},
		{Name: "exclude_hf_value", Fn: func(m *engine.Msg, hf, val string) int { return incExc(m, hf, val, opExclude) }},
		{Name: "hf_value_exists", Fn: func(m *engine.Msg, hf, val string) int { return incExc(m, hf, val, opExists) }},
	}
}

func ret(ok bool) int {
	if ok {
		return 1
	}
	return -1
}

// msgApplyChanges makes the pending edits part of the message (request and reply routes): later reads see
// them, later edits apply to the new text. 1, or -1 when the result is not a SIP message.
func msgApplyChanges(m *engine.Msg) int {
	return ret(m.ApplyChanges() == nil)
}

// msgSetBuffer replaces the whole message with data (1, -1 for an empty or unparseable text).
func msgSetBuffer(m *engine.Msg, data string) int {
	if data == "" || len(data) >= 65536 {
		return -1
	}
	return ret(m.SetBuffer([]byte(data)) == nil)
}

func changeReplyStatus(m *engine.Msg, code int, reason string) int {
	if reason == "" {
		return -1
	}
	return changeStatus(m, code, &reason)
}

// changeStatus rewrites a reply's status code (and reason): within the same class only for 1xx and 2xx
// (a final reply cannot become provisional, nor a negative one positive), as Kamailio allows.
func changeStatus(m *engine.Msg, code int, reason *string) int {
	if !m.IsReply() || code < 100 || code > 699 {
		return -1
	}
	cur := m.StatusCode()
	if (code < 300 || cur < 300) && code/100 != cur/100 {
		return -1
	}
	line := m.Buf[:m.Raw.FirstLineEnd]
	sp := strings.IndexByte(string(line), ' ')
	if sp < 0 || sp+4 > len(line) {
		return -1
	}
	// the code is rewritten in the buffer, as Kamailio does (getters see it); the reason is an edit
	copy(m.Buf[sp+1:sp+4], strconv.Itoa(code))
	if reason != nil {
		rs := sp + 4
		if rs < len(line) && line[rs] == ' ' {
			rs++
		}
		m.AddEdit(rs, len(line), *reason)
	}
	return 1
}

// removeBody removes the body (1 also when there is none); Content-Length follows.
func removeBody(m *engine.Msg) int {
	if m.Raw.Body < len(m.Buf) {
		m.AddEdit(m.Raw.Body, len(m.Buf), "")
	}
	return 1
}

// kept are the headers keep_hf never removes.
var kept = map[string]bool{"from": true, "to": true, "call-id": true, "cseq": true, "via": true, "contact": true,
	"content-length": true, "content-type": true, "route": true, "record-route": true, "max-forwards": true}

// keepHF removes every header except the essential ones and those whose name matches re. Kamailio's
// keep_hf_helper ends with -1 even when it removed headers, and so does this.
func keepHF(m *engine.Msg, re string) int {
	var r *regexp.Regexp
	if re != "" {
		var err error
		if r, err = regexp.Compile("(?im)" + re); err != nil {
			return -1
		}
		r.Longest()
	}
	for _, h := range m.Raw.Hdrs {
		name := h.Name(m.Buf)
		if kept[engine.HeaderName(string(name))] {
			continue
		}
		if r != nil && r.Match(name) {
			continue
		}
		m.AddEdit(int(h.Start), int(h.End), "")
	}
	return -1
}

// fnmatch is shell-style matching (fnmatch(3) without flags: '*' and '?' match any byte, '/' and a leading
// '.' included; [set], [!set], backslash escapes). Kamailio's KEMI returns 0 for a match and -1 for none;
// fnmatch_ex's "i" flag is a no-op in the Debian build of 5.6.3 (FNM_CASEFOLD is not defined there), so the
// flags are ignored here too.
func fnmatch(val, pat, _ string) int {
	re, err := regexp.Compile(globToRegexp(pat))
	if err != nil || !re.MatchString(val) {
		return -1
	}
	return 0
}

// globToRegexp translates a fnmatch pattern into an anchored regular expression.
func globToRegexp(p string) string {
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			} else {
				b.WriteString(`\\`)
			}
		case '[':
			j := i + 1
			if j < len(p) && (p[j] == '!' || p[j] == '^') {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) { // no closing bracket: a literal '['
				b.WriteString(`\[`)
				continue
			}
			set := p[i+1 : j]
			if set != "" && (set[0] == '!' || set[0] == '^') {
				set = "^" + set[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(set, `\`, `\\`) + "]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)\z`)
	return b.String()
}

// iterators is the per-message state of hf_iterator_* and bl_iterator_*.
type iterators struct {
	hf map[string]*hfIter
	bl map[string]*blIter
}

// hfIter follows Kamailio's hf_iterator: it (the current header) and prev (the one before, kept to step
// back), as indexes in m.Raw.Hdrs, -1 for none.
type hfIter struct {
	idx  int
	prev int
	eoh  bool
}

type blIter struct {
	start, end int // the current line (with its LF), start < 0 before the first
	eob        bool
}

func iters(m *engine.Msg) *iterators {
	if it, ok := m.ModState("textopsx").(*iterators); ok {
		return it
	}
	it := &iterators{hf: map[string]*hfIter{}, bl: map[string]*blIter{}}
	m.SetModState("textopsx", it)
	return it
}

// maxIterators is Kamailio's HF_ITERATOR_SIZE / BL_ITERATOR_SIZE; names are shorter than 32 bytes.
const maxIterators = 4

func hfStart(m *engine.Msg, name string) int {
	its := iters(m)
	if name == "" || len(name) >= 32 || its.hf[name] == nil && len(its.hf) >= maxIterators {
		return -1
	}
	its.hf[name] = &hfIter{idx: -1, prev: -1}
	return ret(len(m.Raw.Hdrs) > 0)
}

func hfGet(m *engine.Msg, name string) *hfIter { return iters(m).hf[name] }

func hfNext(m *engine.Msg, name string) int {
	it := hfGet(m, name)
	if it == nil || it.eoh {
		return -1
	}
	if it.idx >= 0 {
		it.prev = it.idx
	}
	it.idx++
	if it.idx >= len(m.Raw.Hdrs) {
		it.idx, it.eoh = -1, true
		return -1
	}
	return 1
}

func hfPrev(m *engine.Msg, name string) int {
	it := hfGet(m, name)
	if it == nil || it.eoh {
		return -1
	}
	// Kamailio's ki_hf_iterator_prev: back to the remembered previous header; once there, a walk that finds
	// the header two before the current one, and otherwise (from the second header, unless it is the last
	// of two) back to the start
	switch n := len(m.Raw.Hdrs); {
	case it.prev < 0:
		return hfStart(m, name)
	case it.prev != it.idx:
		it.idx = it.prev
		return 1
	case it.idx >= 2:
		it.idx, it.prev = it.idx-1, it.idx-2
		return 1
	case it.idx == 1 && n == 2:
		it.idx, it.prev = 0, -1
		return 1
	}
	return hfStart(m, name)
}

func hfEnd(m *engine.Msg, name string) int {
	it := hfGet(m, name)
	if it == nil {
		return -1
	}
	it.idx, it.eoh = -1, false
	return 1
}

func hfCur(m *engine.Msg, name string) (int, bool) {
	it := hfGet(m, name)
	if it == nil || it.idx < 0 || it.idx >= len(m.Raw.Hdrs) {
		return 0, false
	}
	return it.idx, true
}

func hfRm(m *engine.Msg, name string) int {
	i, ok := hfCur(m, name)
	if !ok {
		return -1
	}
	h := m.Raw.Hdrs[i]
	m.AddEdit(int(h.Start), int(h.End), "")
	return 1
}

// hfAdd adds text (as given) after or before the current header.
func hfAdd(m *engine.Msg, name, text string, after bool) int {
	i, ok := hfCur(m, name)
	if !ok || text == "" {
		return -1
	}
	h := m.Raw.Hdrs[i]
	off := h.Start
	if after {
		off = h.End
	}
	m.AddEdit(int(off), int(off), text)
	return 1
}

func hfName(m *engine.Msg, name string) engine.Value {
	i, ok := hfCur(m, name)
	if !ok {
		return engine.Value{}
	}
	return engine.StrVal(string(m.Raw.Hdrs[i].Name(m.Buf)))
}

func hfBody(m *engine.Msg, name string) engine.Value {
	i, ok := hfCur(m, name)
	if !ok {
		return engine.Value{}
	}
	return engine.StrVal(string(m.Raw.Hdrs[i].Value(m.Buf)))
}

func blStart(m *engine.Msg, name string) int {
	its := iters(m)
	if name == "" || len(name) >= 32 || its.bl[name] == nil && len(its.bl) >= maxIterators {
		return -1
	}
	its.bl[name] = &blIter{start: -1}
	return 1
}

func blGet(m *engine.Msg, name string) *blIter { return iters(m).bl[name] }

// blNext moves to the next body line (its LF included, as Kamailio's).
func blNext(m *engine.Msg, name string) int {
	it := blGet(m, name)
	if it == nil || it.eob {
		return -1
	}
	p := m.Raw.Body
	if it.start >= 0 {
		p = it.end
	}
	if p >= len(m.Buf) {
		it.start, it.end, it.eob = -1, -1, true
		return -1
	}
	e := p
	for e < len(m.Buf) {
		if m.Buf[e] == '\n' {
			e++
			break
		}
		e++
	}
	it.start, it.end = p, e
	return 1
}

func blEnd(m *engine.Msg, name string) int {
	it := blGet(m, name)
	if it == nil {
		return -1
	}
	it.start, it.end, it.eob = -1, -1, false
	return 1
}

func blCur(m *engine.Msg, name string) (*blIter, bool) {
	it := blGet(m, name)
	if it == nil || it.start < 0 || it.end <= it.start {
		return nil, false
	}
	return it, true
}

func blRm(m *engine.Msg, name string) int {
	it, ok := blCur(m, name)
	if !ok {
		return -1
	}
	m.AddEdit(it.start, it.end, "")
	return 1
}

func blAdd(m *engine.Msg, name, text string, after bool) int {
	it, ok := blCur(m, name)
	if !ok || text == "" {
		return -1
	}
	off := it.start
	if after {
		off = it.end
	}
	m.AddEdit(off, off, text)
	return 1
}

func blValue(m *engine.Msg, name string) engine.Value {
	it, ok := blCur(m, name)
	if !ok {
		return engine.Value{}
	}
	return engine.StrVal(string(m.Buf[it.start:it.end]))
}
