// Package textops is Kamailio's textops module: regular-expression search and replace on the message,
// header and body changes, and string helpers. Changes are edits (Kamailio's lumps): they apply to what is
// relayed or replied, and every function reads the message as received (textopsx.msg_apply_changes makes
// the changes visible). Patterns are POSIX extended regular expressions in Kamailio; here they run on Go's
// RE2 with the same flags (see regex.go for the differences). Return codes are Kamailio's: 1 found or done,
// -1 not found or error.
package textops

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "textops", New: func() engine.Instance { return &Textops{} }})
}

// Textops has no parameters; it keeps the compiled patterns of the script (see cache.go).
type Textops struct {
	cache rxCache
}

// Exports: KSR.textops.*, all 54 functions of Kamailio 5.6.
func (t *Textops) Exports() []engine.Export {
	return []engine.Export{
		{Name: "search", Fn: t.search},
		{Name: "search_body", Fn: t.searchBody},
		{Name: "search_append", Fn: t.searchAppend},
		{Name: "search_append_body", Fn: t.searchAppendBody},
		{Name: "search_str", Fn: t.searchStr},
		{Name: "search_hf", Fn: t.searchHF},
		{Name: "replace", Fn: t.replace},
		{Name: "replace_all", Fn: t.replaceAll},
		{Name: "replace_body", Fn: t.replaceBody},
		{Name: "replace_body_all", Fn: t.replaceBodyAll},
		{Name: "replace_body_atonce", Fn: t.replaceBodyAtonce},
		{Name: "replace_hdrs", Fn: t.replaceHdrs},
		{Name: "replace_str", Fn: replaceStr},
		{Name: "replace_body_str", Fn: replaceBodyStr},
		{Name: "replace_hdrs_str", Fn: replaceHdrsStr},
		{Name: "subst", Fn: t.substMsg},
		{Name: "subst_body", Fn: t.substBody},
		{Name: "subst_uri", Fn: t.substURI},
		{Name: "subst_user", Fn: t.substUser},
		{Name: "subst_hf", Fn: t.substHF},
		{Name: "regex_substring", Fn: t.regexSubstring},
		{Name: "remove_hf", Fn: removeHF},
		{Name: "remove_hf_re", Fn: t.removeHFRe},
		{Name: "remove_hf_exp", Fn: t.removeHFExp},
		{Name: "remove_hf_idx", Fn: removeHFIdx},
		{Name: "remove_hf_match", Fn: t.removeHFMatch},
		{Name: "is_present_hf", Fn: isPresentHF},
		{Name: "is_present_hf_re", Fn: t.isPresentHFRe},
		{Name: "has_body", Fn: func(m *engine.Msg) int { return hasBody(m, "") }},
		{Name: "has_body_type", Fn: hasBody},
		{Name: "is_privacy", Fn: isPrivacy},
		{Name: "is_audio_on_hold", Fn: isAudioOnHold},
		{Name: "set_body", Fn: setBody},
		{Name: "set_reply_body", Fn: setReplyBody},
		{Name: "filter_body", Fn: filterBody},
		{Name: "set_body_multipart", Fn: setBodyMultipart},
		{Name: "set_body_multipart_mode", Fn: func(m *engine.Msg) int { return setBodyMultipart(m, "", "", "") }},
		{Name: "set_body_multipart_boundary", Fn: func(m *engine.Msg, b string) int { return setBodyMultipart(m, "", "", b) }},
		{Name: "set_body_multipart_content", Fn: func(m *engine.Msg, body, ct string) int { return setBodyMultipart(m, body, ct, "") }},
		{Name: "append_body_part", Fn: func(m *engine.Msg, txt, ct string) int { return appendBodyPart(m, txt, ct, "", false) }},
		{Name: "append_body_part_cd", Fn: func(m *engine.Msg, txt, ct, cd string) int { return appendBodyPart(m, txt, ct, cd, false) }},
		{Name: "append_body_part_hex", Fn: func(m *engine.Msg, txt, ct string) int { return appendBodyPart(m, txt, ct, "", true) }},
		{Name: "append_body_part_hex_cd", Fn: func(m *engine.Msg, txt, ct, cd string) int { return appendBodyPart(m, txt, ct, cd, true) }},
		{Name: "remove_body_part", Fn: removeBodyPart},
		{Name: "get_body_part", Fn: func(m *engine.Msg, ct, pv string) int { return getBodyPart(m, ct, pv, false) }},
		{Name: "get_body_part_raw", Fn: func(m *engine.Msg, ct, pv string) int { return getBodyPart(m, ct, pv, true) }},
		{Name: "starts_with", Fn: startsWith},
		{Name: "ends_with", Fn: endsWith},
		{Name: "str_find", Fn: func(_ *engine.Msg, txt, needle string) int { return strFind(txt, needle, false) }},
		{Name: "str_ifind", Fn: func(_ *engine.Msg, txt, needle string) int { return strFind(txt, needle, true) }},
		{Name: "cmp_str", Fn: func(_ *engine.Msg, a, b string) int { return cmpResult(cmpStr(a, b, false)) }},
		{Name: "cmp_istr", Fn: func(_ *engine.Msg, a, b string) int { return cmpResult(cmpStr(a, b, true)) }},
		{Name: "in_list", Fn: func(_ *engine.Msg, subj, list, sep string) int { return inList(subj, list, sep, false) }},
		{Name: "in_list_prefix", Fn: func(_ *engine.Msg, subj, list, sep string) int { return inList(subj, list, sep, true) }},
	}
}

// hdrStart is where Kamailio's get_header begins: after the start line, so replace and subst never touch
// the Request-URI.
func hdrStart(m *engine.Msg) int {
	i := m.Raw.FirstLineEnd
	if i < len(m.Buf) && m.Buf[i] == '\r' {
		i++
	}
	if i < len(m.Buf) && m.Buf[i] == '\n' {
		i++
	}
	return i
}

// bodyStart returns the body offset, ok=false when the body is empty (Kamailio's "zero length" -1).
func bodyStart(m *engine.Msg) (int, bool) {
	b := m.Raw.Body
	return b, b < len(m.Buf)
}

func ret(ok bool) int {
	if ok {
		return 1
	}
	return -1
}

func (t *Textops) search(m *engine.Msg, re string) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	return ret(r.match(m.Buf))
}

func (t *Textops) searchBody(m *engine.Msg, re string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	return ret(find(r, m.Buf, b) != nil)
}

// searchAppend inserts val after the first match from the headers on.
func (t *Textops) searchAppend(m *engine.Msg, re, val string) int {
	return t.appendAfterMatch(m, re, val, hdrStart(m), len(m.Buf))
}

func (t *Textops) searchAppendBody(m *engine.Msg, re, val string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	return t.appendAfterMatch(m, re, val, b, len(m.Buf))
}

func (t *Textops) appendAfterMatch(m *engine.Msg, re, val string, from, to int) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	loc := find(r, m.Buf[:to], from)
	if loc == nil {
		return -1
	}
	m.AddEdit(loc[1], loc[1], val)
	return 1
}

// searchStr matches a regex against a string: 1 / -1.
func (t *Textops) searchStr(_ *engine.Msg, text, re string) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	return ret(r.match([]byte(text)))
}

// replace replaces the first match from the headers on.
func (t *Textops) replace(m *engine.Msg, re, val string) int {
	return t.replaceIn(m, re, val, hdrStart(m), len(m.Buf), false)
}

func (t *Textops) replaceAll(m *engine.Msg, re, val string) int {
	return t.replaceIn(m, re, val, hdrStart(m), len(m.Buf), true)
}

func (t *Textops) replaceBody(m *engine.Msg, re, val string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	return t.replaceIn(m, re, val, b, len(m.Buf), false)
}

func (t *Textops) replaceBodyAll(m *engine.Msg, re, val string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	return t.replaceIn(m, re, val, b, len(m.Buf), true)
}

// replaceBodyAtonce is replace_body_all in Kamailio 5.6 (the same helper without the line-by-line NOTBOL
// distinction, which RE2's multi-line mode already gives).
func (t *Textops) replaceBodyAtonce(m *engine.Msg, re, val string) int {
	return t.replaceBodyAll(m, re, val)
}

// replaceHdrs replaces the first match in the header block only.
func (t *Textops) replaceHdrs(m *engine.Msg, re, val string) int {
	s := hdrStart(m)
	if m.Raw.HdrsEnd <= s {
		return -1
	}
	return t.replaceIn(m, re, val, s, m.Raw.HdrsEnd, false)
}

// replaceIn replaces the first (or every) match in buf[from:to]; an empty match is an error (-1), as in
// Kamailio's replace_all.
func (t *Textops) replaceIn(m *engine.Msg, re, val string, from, to int, all bool) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	buf := m.Buf[:to]
	res := -1
	for from <= to {
		loc := find(r, buf, from)
		if loc == nil {
			break
		}
		if all && loc[0] == loc[1] {
			return -1
		}
		m.AddEdit(loc[0], loc[1], val)
		res = 1
		if !all {
			break
		}
		from = loc[1]
	}
	return res
}

// replaceStrIn is Kamailio's ki_replace_str_helper: plain-text search from from; mode "f" (or empty)
// replaces the first occurrence, anything else all of them, and after the first match the search runs to
// the end of the message (as Kamailio's does). 1 even when nothing matched.
func replaceStrIn(m *engine.Msg, from, to int, key, val, mode string) int {
	if to <= from || key == "" {
		return 1
	}
	first := mode == "" || mode[0] == 'f' || mode[0] == 'F'
	end := to
	for from < end {
		i := bytes.Index(m.Buf[from:end], []byte(key))
		if i < 0 {
			break
		}
		m.AddEdit(from+i, from+i+len(key), val)
		if first {
			return 1
		}
		from += i + len(key)
		end = len(m.Buf)
	}
	return 1
}

func replaceStr(m *engine.Msg, key, val, mode string) int {
	return replaceStrIn(m, hdrStart(m), len(m.Buf), key, val, mode)
}

func replaceBodyStr(m *engine.Msg, key, val, mode string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	return replaceStrIn(m, b, len(m.Buf), key, val, mode)
}

func replaceHdrsStr(m *engine.Msg, key, val, mode string) int {
	s := hdrStart(m)
	if m.Raw.HdrsEnd <= s {
		return -1
	}
	return replaceStrIn(m, s, m.Raw.HdrsEnd, key, val, mode)
}

// substMsg applies a sed-style expression from the headers on.
func (t *Textops) substMsg(m *engine.Msg, expr string) int {
	return t.substIn(m, expr, hdrStart(m), len(m.Buf))
}

func (t *Textops) substBody(m *engine.Msg, expr string) int {
	b, ok := bodyStart(m)
	if !ok {
		return -1
	}
	return t.substIn(m, expr, b, len(m.Buf))
}

func (t *Textops) substIn(m *engine.Msg, expr string, from, to int) int {
	se, err := t.parseSubst(expr)
	if err != nil {
		return -1
	}
	ms, err := se.run(m, m.Buf[:to], from)
	if err != nil || len(ms) == 0 {
		return -1
	}
	for _, x := range ms {
		m.AddEdit(x.off, x.end, x.text)
	}
	return 1
}

// substURI applies the expression to the Request-URI ($ru).
func (t *Textops) substURI(m *engine.Msg, expr string) int {
	if !m.IsRequest() {
		return -1
	}
	se, err := t.parseSubst(expr)
	if err != nil {
		return -1
	}
	out, ok := se.apply(m, m.RURI())
	if !ok {
		return -1
	}
	m.NewURI = out
	return 1
}

// substUser applies the expression to the user part of the Request-URI (an empty user when there is none)
// and sets the result as the user (Kamailio's SET_USER_T: an empty result removes the user).
func (t *Textops) substUser(m *engine.Msg, expr string) int {
	if !m.IsRequest() {
		return -1
	}
	se, err := t.parseSubst(expr)
	if err != nil {
		return -1
	}
	uri := m.RURI()
	us, ue, ok := userSpan(uri)
	if !ok {
		return -1
	}
	out, ok := se.apply(m, uri[us:ue])
	if !ok {
		return -1
	}
	if ue > us { // replace the user (and the '@' when the new user is empty)
		if out == "" {
			m.NewURI = uri[:us] + uri[ue+1:]
		} else {
			m.NewURI = uri[:us] + out + uri[ue:]
		}
	} else if out != "" {
		m.NewURI = uri[:us] + out + "@" + uri[us:]
	}
	return 1
}

// userSpan locates the user part of a SIP URI: [us:ue] ("" at the host's start when there is none).
func userSpan(uri string) (us, ue int, ok bool) {
	c := strings.IndexByte(uri, ':')
	if c < 0 {
		return 0, 0, false
	}
	us = c + 1
	rest := uri[us:]
	end := strings.IndexAny(rest, ";?>")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		user := rest[:at]
		if p := strings.IndexByte(user, ':'); p >= 0 { // user:password
			return us, us + p, true
		}
		return us, us + at, true
	}
	return us, us, true
}

// substHF applies the expression to the body of the first (flags "f" or empty) or last ("l") header named
// hname; 1 when it changed it, -1 when no header or no match.
func (t *Textops) substHF(m *engine.Msg, hname, expr, flags string) int {
	se, err := t.parseSubst(expr)
	if err != nil {
		return -1
	}
	lname := engine.HeaderName(hname)
	idx := -1
	for i, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			idx = i
			if flags == "" || flags[0] != 'l' {
				break
			}
		}
	}
	if idx < 0 {
		return -1
	}
	h := m.Raw.Hdrs[idx]
	ms, err := se.run(m, m.Buf[:h.VEnd], int(h.VStart))
	if err != nil || len(ms) == 0 {
		return -1
	}
	for _, x := range ms {
		m.AddEdit(x.off, x.end, x.text)
	}
	return 1
}

// searchHF matches re against the body of the headers named hname: every one, the first ("f") or the last
// ("l"); 1 when one matches.
func (t *Textops) searchHF(m *engine.Msg, hname, re, flags string) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	lname := engine.HeaderName(hname)
	var hit []int
	for i, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			hit = append(hit, i)
		}
	}
	if len(hit) == 0 {
		return -1
	}
	switch {
	case strings.HasPrefix(flags, "f"):
		hit = hit[:1]
	case strings.HasPrefix(flags, "l"):
		hit = hit[len(hit)-1:]
	}
	for _, i := range hit {
		if r.match(m.Raw.Hdrs[i].Value(m.Buf)) {
			return 1
		}
	}
	return -1
}

// regexSubstring sets the pseudo-variable dst to group mindex of the first match of re (case-sensitive,
// POSIX extended) in input: 1, -1 on error or an empty group, -2 when nothing matched.
func (t *Textops) regexSubstring(m *engine.Msg, input, re string, mindex, nmatch int, dst string) int {
	if dst == "" || mindex > nmatch-1 || mindex < 0 {
		return -1
	}
	r, err := t.compileFlags(re, false, false)
	if err != nil {
		return -1
	}
	loc := r.re.FindStringSubmatchIndex(input)
	if loc == nil {
		return -2
	}
	if 2*mindex+1 >= len(loc) || loc[2*mindex] < 0 || loc[2*mindex] == loc[2*mindex+1] {
		return -1
	}
	if !pvSet(m, dst, engine.StrVal(input[loc[2*mindex]:loc[2*mindex+1]])) {
		return -1
	}
	return 1
}

// validName: a header name as Kamailio's parser accepts it (no colon, no white space).
func validName(name string) bool {
	return name != "" && len(name) <= 252 && !strings.ContainsAny(name, ": \t\r\n")
}

// removeHF removes every header named hname: KSR.textops.remove_hf is Kamailio's sr_kemi_hdr_remove, the
// same as KSR.hdr.remove (1 even when none matched, -1 for a bad name).
func removeHF(m *engine.Msg, hname string) int {
	if !validName(hname) {
		return -1
	}
	m.RemoveHeader(hname)
	return 1
}

// removeHFRe removes the headers whose name matches re: 1 when it removed one, -1 when none.
func (t *Textops) removeHFRe(m *engine.Msg, re string) int {
	return t.removeHFExp(m, re, "")
}

// removeHFExp removes the headers whose name matches re and not skip ("" skips nothing).
func (t *Textops) removeHFExp(m *engine.Msg, re, skip string) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	var sk *rx
	if skip != "" {
		if sk, err = t.compile(skip); err != nil {
			return -1
		}
	}
	n := 0
	for _, h := range m.Raw.Hdrs {
		name := h.Name(m.Buf)
		if sk != nil && sk.match(name) {
			continue
		}
		if r.match(name) {
			m.AddEdit(int(h.Start), int(h.End), "")
			n++
		}
	}
	return ret(n > 0)
}

// removeHFIdx removes the idx-th header named hname (0 first, negative from the end): 1 removed (or a
// negative index beyond the count), 2 when there is no such header.
func removeHFIdx(m *engine.Msg, hname string, idx int) int {
	if !validName(hname) {
		return -1
	}
	lname := engine.HeaderName(hname)
	var hit []int
	for i, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			hit = append(hit, i)
		}
	}
	pos := idx
	if idx < 0 {
		pos = len(hit) + idx
		if pos < 0 {
			return 1
		}
	}
	if pos >= len(hit) {
		return 2
	}
	h := m.Raw.Hdrs[hit[pos]]
	m.AddEdit(int(h.Start), int(h.End), "")
	return 1
}

// removeHFMatch removes the headers named hname whose body compares with expr by op: eq, ne, in
// (substring) or re (regex): 1 when it removed one, -2 when none, -1 for a bad op or name.
func (t *Textops) removeHFMatch(m *engine.Msg, hname, op, expr string) int {
	if !validName(hname) {
		return -1
	}
	var r *rx
	switch strings.ToLower(op) {
	case "eq", "ne", "in":
	case "re":
		var err error
		if r, err = t.compile(expr); err != nil {
			return -1
		}
	default:
		return -1
	}
	lname := engine.HeaderName(hname)
	res := -2
	for _, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, lname) {
			continue
		}
		v := string(h.Value(m.Buf))
		var hit bool
		switch strings.ToLower(op) {
		case "eq":
			hit = v == expr
		case "ne":
			hit = v != expr
		case "in":
			hit = expr != "" && strings.Contains(v, expr)
		case "re":
			hit = r.match([]byte(v))
		}
		if hit {
			m.AddEdit(int(h.Start), int(h.End), "")
			res = 1
		}
	}
	return res
}

func isPresentHF(m *engine.Msg, hname string) int {
	if !validName(hname) {
		return -1
	}
	return ret(m.Raw.Find(m.Buf, engine.HeaderName(hname)) >= 0)
}

func (t *Textops) isPresentHFRe(m *engine.Msg, re string) int {
	r, err := t.compile(re)
	if err != nil {
		return -1
	}
	for _, h := range m.Raw.Hdrs {
		if r.match(h.Name(m.Buf)) {
			return 1
		}
	}
	return -1
}

// contentLength is the Content-Length value, -1 without the header.
func contentLength(m *engine.Msg) int {
	v, ok := m.Header("content-length")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return -1
	}
	return n
}

// hasBody: 1 when Content-Length is present and not 0 and, with a type, the Content-Type (application/sdp
// when absent, RFC 3261) has that type/subtype; -1 otherwise.
func hasBody(m *engine.Msg, ctype string) int {
	if contentLength(m) <= 0 {
		return -1
	}
	if ctype == "" {
		return 1
	}
	want, ok := mimeType(ctype)
	if !ok {
		return -1
	}
	got := "application/sdp"
	if v, ok := m.Header("content-type"); ok {
		if got, ok = mimeType(v); !ok {
			return -1
		}
	}
	return ret(got == want)
}

// mimeType returns "type/subtype" in lower case, without parameters.
func mimeType(v string) (string, bool) {
	v, _, _ = strings.Cut(v, ";")
	t, s, ok := strings.Cut(strings.TrimSpace(v), "/")
	t, s = strings.TrimSpace(t), strings.TrimSpace(s)
	if !ok || t == "" || s == "" {
		return "", false
	}
	return strings.ToLower(t + "/" + s), true
}

// privacyValues are RFC 3323/3325 Privacy header values.
var privacyValues = map[string]bool{"user": true, "header": true, "session": true, "none": true, "critical": true, "id": true, "history": true}

// isPrivacy: 1 when the Privacy header lists the value, -1 otherwise or for an unknown value.
func isPrivacy(m *engine.Msg, value string) int {
	value = strings.ToLower(strings.TrimSpace(value))
	if !privacyValues[value] {
		return -1
	}
	for _, h := range m.Headers("privacy") {
		for _, v := range strings.Split(h, ";") {
			if strings.EqualFold(strings.TrimSpace(v), value) {
				return 1
			}
		}
	}
	return -1
}

// isAudioOnHold: the hold kind of the first audio stream that is on hold in the SDP body: 1 (RFC 2543,
// c=0.0.0.0), 2 (RFC 3264, a=sendonly or a=inactive), -1 when none is.
func isAudioOnHold(m *engine.Msg) int {
	body, ok := sdpBody(m)
	if !ok {
		return -1
	}
	sessIP, sessHold := "", 0
	type stream struct {
		media, port, ip string
		hold            int
	}
	var streams []*stream
	var cur *stream
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		val := line[2:]
		switch line[0] {
		case 'm':
			f := strings.Fields(val)
			cur = &stream{}
			if len(f) > 1 {
				cur.media, cur.port = f[0], f[1]
			}
			streams = append(streams, cur)
		case 'c':
			f := strings.Fields(val)
			ip := ""
			if len(f) >= 3 && f[1] == "IP4" {
				ip = f[2]
			} else if len(f) >= 3 {
				ip = "v6:" + f[2]
			}
			if cur == nil {
				sessIP = ip
			} else {
				cur.ip = ip
			}
		case 'a':
			if val == "sendonly" || val == "inactive" {
				if cur == nil {
					sessHold = 2
				} else {
					cur.hold = 2
				}
			}
		}
	}
	for _, s := range streams {
		if s.hold == 0 {
			ip := s.ip
			if ip == "" {
				ip = sessIP
			}
			if ip == "0.0.0.0" && s.port != "9" {
				s.hold = 1
			}
		}
		if s.media == "audio" && s.hold != 0 {
			return s.hold
		}
		if s.media == "audio" && sessHold != 0 {
			return sessHold
		}
	}
	return -1
}

// sdpBody returns the SDP: the whole body for application/sdp (or no Content-Type), the SDP part of a
// multipart body.
func sdpBody(m *engine.Msg) (string, bool) {
	b, ok := bodyStart(m)
	if !ok {
		return "", false
	}
	body := string(m.Buf[b:])
	ct := "application/sdp"
	if v, ok := m.Header("content-type"); ok {
		ct = v
	}
	mt, _ := mimeType(ct)
	switch {
	case mt == "application/sdp":
		return body, true
	case strings.HasPrefix(mt, "multipart/"):
		for _, p := range parts(ct, body) {
			if t, _ := mimeType(p.ctype); t == "application/sdp" {
				return p.content, true
			}
		}
	}
	return "", false
}

// setBody replaces the body and its Content-Type (adding Content-Length when absent); 1, or -1 for an
// empty body or type.
func setBody(m *engine.Msg, body, ctype string) int {
	if body == "" || ctype == "" {
		return -1
	}
	b := m.Raw.Body
	if b > len(m.Buf) {
		b = len(m.Buf)
	}
	// earlier body changes go, as Kamailio drops its body lumps here
	m.DropEditsFrom(b)
	m.DelModState("textops")
	if b < len(m.Buf) {
		m.AddEdit(b, len(m.Buf), "")
	}
	end := m.Raw.HdrsEnd
	ctIdx := m.Raw.Find(m.Buf, "content-type")
	if ctIdx < 0 || string(m.Raw.Hdrs[ctIdx].Value(m.Buf)) != ctype {
		if ctIdx >= 0 {
			h := m.Raw.Hdrs[ctIdx]
			m.AddEdit(int(h.Start), int(h.End), "")
		}
		m.AddEdit(end, end, "Content-Type: "+ctype+"\r\n")
	}
	if m.Raw.Find(m.Buf, "content-length") < 0 {
		m.AddEdit(end, end, "Content-Length: "+strconv.Itoa(len(body))+"\r\n")
	}
	m.AddEdit(len(m.Buf), len(m.Buf), body)
	return 1
}

// setReplyBody sets the body (and Content-Type) of the replies this proxy generates for the request. As in
// Kamailio, a reply has one body: a second call still adds its Content-Type header, then fails with -1.
func setReplyBody(m *engine.Msg, body, ctype string) int {
	if body == "" || ctype == "" {
		return -1
	}
	m.ReplyHdrs = append(m.ReplyHdrs, "Content-Type: "+ctype+"\r\n"...)
	if m.ReplyBody != nil {
		return -1
	}
	m.ReplyBody = append([]byte(nil), body...)
	return 1
}

func cmpStr(a, b string, fold bool) int {
	if fold {
		a, b = strings.ToLower(a), strings.ToLower(b)
	}
	return strings.Compare(a, b)
}

// cmpResult is Kamailio's mapping of a comparison: equal 1, greater -1, less -2.
func cmpResult(c int) int {
	switch {
	case c == 0:
		return 1
	case c > 0:
		return -1
	}
	return -2
}

func startsWith(_ *engine.Msg, s, prefix string) int {
	if len(s) < len(prefix) {
		return -1
	}
	return cmpResult(strings.Compare(s[:len(prefix)], prefix))
}

func endsWith(_ *engine.Msg, s, suffix string) int {
	if len(suffix) > len(s) {
		return -1
	}
	return cmpResult(strings.Compare(s[len(s)-len(suffix):], suffix))
}

// strFind returns the 1-based position of needle in txt, -1 when absent (or needle is empty).
func strFind(txt, needle string, fold bool) int {
	if needle == "" || len(needle) > len(txt) {
		return -1
	}
	if fold {
		txt, needle = strings.ToLower(txt), strings.ToLower(needle)
	}
	i := strings.Index(txt, needle)
	if i < 0 {
		return -1
	}
	return i + 1
}

// inList: 1 when subj equals (or, with prefix, starts with) an element of the sep-separated list, elements
// trimmed of white space; -1 otherwise or for an empty argument.
func inList(subj, list, sep string, prefix bool) int {
	if subj == "" || list == "" || sep == "" {
		return -1
	}
	for _, e := range strings.Split(list, sep[:1]) {
		e = strings.Trim(e, " \t\r\n")
		if prefix {
			if e != "" && strings.HasPrefix(subj, e) {
				return 1
			}
		} else if e == subj {
			return 1
		}
	}
	return -1
}
