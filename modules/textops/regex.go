package textops

import (
	"bytes"
	"errors"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/siplua/siplua/engine"
)

// Kamailio compiles textops patterns with POSIX regcomp(REG_EXTENDED|REG_ICASE|REG_NEWLINE): case-insensitive,
// '.' and bracket negations do not match a newline, ^ and $ match at line boundaries, and the match is the
// leftmost-longest one. Go's RE2 gets the same with the (?i) and (?m) flags, (?-s) (the default) and
// Longest(). What RE2 lacks: back-references inside the pattern (\1 in the regex itself), and GNU's \< \>
// word anchors; patterns using them fail to compile and the function returns -1, as Kamailio does for a
// regex it cannot compile. Bracket classes ([[:digit:]]), \w, \s, \b are accepted by both.

// rx is a compiled pattern and its variant for a search that starts inside a line (POSIX REG_NOTBOL, which
// RE2 lacks): "\A(?s:.)(?:re)" run from one byte earlier, so ^ sees the real previous byte.
type rx struct {
	re      *regexp.Regexp
	src     string // the pattern with its flags, for the NOTBOL variant
	once    sync.Once
	notbolR *regexp.Regexp

	// For a newline-sensitive pattern that starts with ^ and a literal ("^Subject: H"), every match starts
	// at a line start with that literal: find checks line starts with a byte compare and runs anch (the
	// pattern anchored with \A) there only. RE2 otherwise runs its automaton from every byte of the
	// message, which for such patterns costs about ten times more.
	lit  []byte // the literal, lower case when fold
	fold bool
	anch *regexp.Regexp
}

// notbol compiles the NOTBOL variant on first use (most patterns never need it).
func (r *rx) notbol() *regexp.Regexp {
	r.once.Do(func() {
		nb, err := regexp.Compile(r.src)
		if err == nil {
			nb.Longest()
		}
		r.notbolR = nb
	})
	return r.notbolR
}

// compileRx compiles a textops pattern with Kamailio's flags (case-insensitive, newline-sensitive).
func compileRx(pattern string) (*rx, error) {
	return compileFlags(pattern, true, true)
}

func compileFlags(pattern string, icase, newline bool) (*rx, error) {
	flags := ""
	if icase {
		flags += "i"
	}
	if newline {
		flags += "m"
	} else {
		flags += "s"
	}
	re, err := regexp.Compile("(?" + flags + ")" + pattern)
	if err != nil {
		return nil, err
	}
	re.Longest()
	r := &rx{re: re, src: "(?" + flags + `)\A(?s:.)(?:` + pattern + ")"}
	if newline {
		if lit, ok := lineLiteral("(?" + flags + ")" + pattern); ok {
			if anch, err := regexp.Compile("(?" + flags + `)\A(?:` + pattern + ")"); err == nil {
				anch.Longest()
				r.lit, r.fold, r.anch = lit, icase, anch
				if icase {
					r.lit = bytes.ToLower(lit)
				}
			}
		}
	}
	return r, nil
}

// lineLiteral returns the ASCII literal that follows a leading ^ of a multi-line pattern. (RE2 folds k and s
// to the Kelvin and long-s signs too; the byte compare does not, as glibc in the C locale does not.)
func lineLiteral(pattern string) ([]byte, bool) {
	t, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	if t.Op != syntax.OpConcat || len(t.Sub) < 2 || t.Sub[0].Op != syntax.OpBeginLine || t.Sub[1].Op != syntax.OpLiteral {
		return nil, false
	}
	var lit []byte
	for _, c := range t.Sub[1].Rune {
		if c >= utf8.RuneSelf {
			break
		}
		lit = append(lit, byte(c))
	}
	return lit, len(lit) > 0
}

// findLine is find for a pattern with a line literal: only line starts (and from, when it is one) are
// tried.
func findLine(r *rx, buf []byte, from int, boolOnly bool) ([]int, bool) {
	p := from
	if p > 0 && buf[p-1] != '\n' && buf[p-1] != '\r' {
		p = nextLine(buf, p)
	}
	for p >= 0 && p <= len(buf) {
		if hasPrefix(buf[p:], r.lit, r.fold) {
			if boolOnly {
				if r.anch.Match(buf[p:]) {
					return nil, true
				}
			} else if loc := r.anch.FindSubmatchIndex(buf[p:]); loc != nil {
				return shift(loc, p), true
			}
		}
		p = nextLine(buf, p)
	}
	return nil, false
}

// nextLine returns the start of the line after the one containing p, -1 at the end.
func nextLine(buf []byte, p int) int {
	i := bytes.IndexByte(buf[p:], '\n')
	if i < 0 {
		return -1
	}
	return p + i + 1
}

func hasPrefix(b, lit []byte, fold bool) bool {
	if len(b) < len(lit) {
		return false
	}
	if !fold {
		return bytes.Equal(b[:len(lit)], lit)
	}
	for i, c := range lit {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != c {
			return false
		}
	}
	return true
}

// match reports whether the pattern matches b.
func (r *rx) match(b []byte) bool {
	if r.anch != nil {
		_, ok := findLine(r, b, 0, true)
		return ok
	}
	return r.re.Match(b)
}

// find returns the first match in buf[from:] as absolute submatch positions; when from is inside a line
// (the previous byte is neither CR nor LF) ^ does not match at from, as with Kamailio's REG_NOTBOL.
func find(r *rx, buf []byte, from int) []int {
	if r.anch != nil {
		if from > len(buf) {
			return nil
		}
		loc, _ := findLine(r, buf, from, false)
		return loc
	}
	for from <= len(buf) {
		if from == 0 || buf[from-1] == '\n' || buf[from-1] == '\r' {
			return shift(r.re.FindSubmatchIndex(buf[from:]), from)
		}
		loc := r.re.FindSubmatchIndex(buf[from:])
		if loc == nil {
			return nil
		}
		if loc[0] > 0 { // no match starts at from, so whether ^ may match there does not matter
			return shift(loc, from)
		}
		nbre := r.notbol()
		if nbre == nil {
			return nil
		}
		if nb := nbre.FindSubmatchIndex(buf[from-1:]); nb != nil {
			nb = shift(nb, from-1)
			nb[0] = from
			return nb
		}
		from++ // the match at from needed ^: look further
		if from <= len(buf) && from > 0 && (buf[from-1] == '\n' || buf[from-1] == '\r') {
			continue
		}
		if from > len(buf) {
			return nil
		}
		if loc := r.re.FindSubmatchIndex(buf[from:]); loc == nil {
			return nil
		}
	}
	return nil
}

func shift(loc []int, by int) []int {
	for i := range loc {
		if loc[i] >= 0 {
			loc[i] += by
		}
	}
	return loc
}

// subst is a parsed sed-style expression /re/replacement/flags (Kamailio's subst_parser).
type subst struct {
	re  *rx
	all bool
	// repl is the replacement split in parts: literal text, \N group references, \u (the R-URI) and
	// pseudo-variables ($ru, $hdr(X), $var(x)).
	repl []replPart
}

type replPart struct {
	lit   string
	group int    // >= 0: \N
	uri   bool   // \u
	pv    string // "$name" or "$name(arg)"
}

var errSubst = errors.New("bad subst expression")

// parseSubst parses "/re/repl/flags" with any separator (the first byte, not a backslash); flags are i
// (case-insensitive), s (newline matches '.'), g (all matches). Without i the match is case-sensitive.
func parseSubst(s string) (*subst, error) {
	if len(s) < 3 || s[0] == '\\' {
		return nil, errSubst
	}
	c := s[0]
	p := 1
	for ; p < len(s); p++ {
		if s[p] == c && s[p-1] != '\\' {
			break
		}
	}
	if p >= len(s) || len(s) < p+2 {
		return nil, errSubst
	}
	reText := s[1:p]
	var parts []replPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, replPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	q := p + 1
	found := false
	for ; q < len(s); q++ {
		ch := s[q]
		if ch == '\\' && q+1 < len(s) {
			q++
			e := s[q]
			switch {
			case e == 'n':
				lit.WriteByte('\n')
			case e == 'r':
				lit.WriteByte('\r')
			case e == 't':
				lit.WriteByte('\t')
			case e == 'u':
				flush()
				parts = append(parts, replPart{uri: true, group: -1})
			case e >= '0' && e <= '9':
				flush()
				parts = append(parts, replPart{group: int(e - '0')})
			default: // \\, \$, \<sep> and any other escaped byte stand for themselves
				lit.WriteByte(e)
			}
			continue
		}
		if ch == '$' {
			end := pvEnd(s, q)
			flush()
			parts = append(parts, replPart{pv: s[q:end], group: -1})
			q = end - 1
			continue
		}
		if ch == c {
			found = true
			break
		}
		lit.WriteByte(ch)
	}
	if !found {
		return nil, errSubst
	}
	flush()
	icase, newline, all := false, true, false
	for _, f := range s[q+1:] {
		switch f {
		case 'i':
			icase = true
		case 's':
			newline = false
		case 'g':
			all = true
		default:
			return nil, errSubst
		}
	}
	re, err := compileFlags(reText, icase, newline)
	if err != nil {
		return nil, err
	}
	return &subst{re: re, all: all, repl: parts}, nil
}

// pvEnd returns the end of the pseudo-variable starting at s[i] == '$': $name or $name(arg) or $(...).
func pvEnd(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] == '(' {
		return closeParen(s, j)
	}
	for j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '(' {
		return closeParen(s, j)
	}
	return j
}

func closeParen(s string, open int) int {
	depth := 0
	for k := open; k < len(s); k++ {
		switch s[k] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return k + 1
			}
		}
	}
	return len(s)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// build renders the replacement for one match (loc: FindSubmatchIndex positions in buf).
func (se *subst) build(m *engine.Msg, buf []byte, loc []int) string {
	var b strings.Builder
	for _, p := range se.repl {
		switch {
		case p.uri:
			if m.IsRequest() {
				b.WriteString(m.RURI())
			}
		case p.pv != "":
			b.WriteString(pvGet(m, p.pv))
		case p.group >= 0:
			if 2*p.group+1 < len(loc) && loc[2*p.group] >= 0 {
				b.Write(buf[loc[2*p.group]:loc[2*p.group+1]])
			}
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// match is one replacement: buf[off:end] becomes text.
type match struct {
	off, end int
	text     string
}

// run applies the expression to buf[start:] (Kamailio's subst_run): the first match, or every match with
// g. An empty match is an error, as in Kamailio ("matched string is empty").
func (se *subst) run(m *engine.Msg, buf []byte, start int) ([]match, error) {
	var out []match
	from := start
	for from <= len(buf) {
		loc := find(se.re, buf, from)
		if loc == nil {
			break
		}
		if loc[0] == loc[1] {
			return nil, errors.New("subst: empty match")
		}
		out = append(out, match{off: loc[0], end: loc[1], text: se.build(m, buf, loc)})
		from = loc[1]
		if !se.all {
			break
		}
	}
	return out, nil
}

// apply returns s with the expression applied (Kamailio's subst_str), ok=false when nothing matched.
func (se *subst) apply(m *engine.Msg, s string) (string, bool) {
	ms, err := se.run(m, []byte(s), 0)
	if err != nil || len(ms) == 0 {
		return "", false
	}
	var b strings.Builder
	pos := 0
	for _, x := range ms {
		b.WriteString(s[pos:x.off])
		b.WriteString(x.text)
		pos = x.end
	}
	b.WriteString(s[pos:])
	return b.String(), true
}

// pvGet reads a pseudo-variable of a loaded module ("$ru", "$hdr(X)", "$var(x)"); "" when unknown or null.
func pvGet(m *engine.Msg, spec string) string {
	name, arg, ok := splitPV(spec)
	if !ok || m.E == nil {
		return ""
	}
	pv, ok := m.E.LookupPV(name)
	if !ok || pv.Get == nil {
		return ""
	}
	v := pv.Get(m, arg)
	if v.Kind == engine.Null {
		return ""
	}
	return v.String()
}

// pvSet writes a pseudo-variable; false when it is unknown or read-only.
func pvSet(m *engine.Msg, spec string, v engine.Value) bool {
	name, arg, ok := splitPV(spec)
	if !ok || m.E == nil {
		return false
	}
	pv, ok := m.E.LookupPV(name)
	if !ok || pv.Set == nil {
		return false
	}
	return pv.Set(m, arg, v) == nil
}

func splitPV(spec string) (name, arg string, ok bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(spec), "$")
	if !ok || s == "" {
		return "", "", false
	}
	if n, rest, found := strings.Cut(s, "("); found {
		if !strings.HasSuffix(rest, ")") {
			return "", "", false
		}
		return n, rest[:len(rest)-1], n != ""
	}
	return s, "", true
}
