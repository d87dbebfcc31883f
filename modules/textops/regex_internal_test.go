package textops

import (
	"fmt"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// TestFindNotBOL: a search that starts inside a line does not let ^ match there (POSIX REG_NOTBOL, as
// Kamailio's replace_all and subst g use), but does at the next line start.
func TestFindNotBOL(t *testing.T) {
	for _, c := range []struct {
		re, buf string
		from    int
		want    string // "start-end" or "nil"
	}{
		{"^a", "aaa\naa", 0, "0-1"},
		{"^a", "aaa\naa", 1, "4-5"},
		{"^a", "aaa\r\naa", 3, "5-6"},
		{"^a", "xa", 1, "nil"},
		{"a", "xa", 1, "1-2"},
		{"^", "ab", 1, "nil"},
		{"b$", "ab\nb", 1, "1-2"},
		{"^(ab|b)", "ab\nb", 1, "3-4"},
		{"A+", "xaaay", 1, "1-4"}, // case-insensitive, leftmost-longest
		{"(a|ab)(c|bcd)", "abcd", 0, "0-4"},
	} {
		r, err := compileRx(c.re)
		if err != nil {
			t.Fatalf("%q: %v", c.re, err)
		}
		got := "nil"
		if loc := find(r, []byte(c.buf), c.from); loc != nil {
			got = fmt.Sprintf("%d-%d", loc[0], loc[1])
		}
		if got != c.want {
			t.Errorf("find(%q, %q, %d) = %s, want %s", c.re, c.buf, c.from, got, c.want)
		}
	}
}

// TestLineLiteralPath: patterns starting with ^ and a literal take the line-start path; it finds what the
// general path finds, from every offset.
func TestLineLiteralPath(t *testing.T) {
	bufs := []string{
		"INVITE sip:a SIP/2.0\r\nSubject: Hello\r\nsubject: hi there\r\nX: Subject: no\r\n\r\nSubject: body",
		"Subj\nSubject\r\nSUBJECT: x\n\nsubject:",
		"", "\n", "aSubject: x",
	}
	pats := []string{"^Subject: (h[a-z]+)", "^subject", "^SUBJECT:.*$", "^X: S", "^Subj(ect)?", "^a"}
	for _, pat := range pats {
		fast, err := compileRx(pat)
		if err != nil {
			t.Fatal(err)
		}
		if fast.anch == nil {
			t.Fatalf("%q: no line-literal path", pat)
		}
		slow := &rx{re: fast.re, src: fast.src}
		for _, b := range bufs {
			for from := 0; from <= len(b); from++ {
				got, want := fmt.Sprint(find(fast, []byte(b), from)), fmt.Sprint(find(slow, []byte(b), from))
				if got != want {
					t.Errorf("find(%q, %q, %d) = %s, general path %s", pat, b, from, got, want)
				}
			}
			if fast.match([]byte(b)) != slow.match([]byte(b)) {
				t.Errorf("match(%q, %q) differs", pat, b)
			}
		}
	}
	for _, pat := range []string{"Subject", "^(a|b)", "^.x", "(?-m)^a"} {
		if r, _ := compileRx(pat); r != nil && r.anch != nil {
			t.Errorf("%q took the line-literal path", pat)
		}
	}
}

// TestParseSubst: Kamailio's subst_parser rules: any separator, escaped separators, \N, \n \r \t, flags
// i s g; anything else is an error.
func TestParseSubst(t *testing.T) {
	for _, c := range []struct {
		expr, in, out string
		ok            bool
	}{
		{"/a/b/", "xax", "xbx", true},
		{"/a/b/", "xAx", "", false},
		{"/a/b/i", "xAx", "xbx", true},
		{"/a/b/g", "aXa", "bXb", true},
		{"/a/b/", "aXa", "bXa", true},
		{"#(x+)#<\\1>#", "axxb", "a<xx>b", true},
		{"/a\\/b/c/", "a/b", "c", true},
		{"/a/\\n\\t\\\\/", "a", "\n\t\\", true},
		{"/a.b/X/", "a\nb", "", false},
		{"/a.b/X/s", "a\nb", "X", true},
		{"/(a)(b)?/[\\2]/", "a", "[]", true},
	} {
		se, err := parseSubst(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		out, ok := se.apply(nil, c.in)
		if ok != c.ok || out != c.out {
			t.Errorf("subst %q on %q = %q,%v want %q,%v", c.expr, c.in, out, ok, c.out, c.ok)
		}
	}
	for _, bad := range []string{"", "ab", "\\a\\b\\", "/a/b", "/a/b/x", "/(/b/"} {
		if _, err := parseSubst(bad); err == nil {
			t.Errorf("parseSubst(%q) accepted", bad)
		}
	}
}

// BenchmarkSearchCompile: textops compiles the pattern on every call, as Kamailio's KEMI functions do.
func BenchmarkSearchCompile(b *testing.B) {
	buf := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n" +
		"Subject: Hello World\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r, err := compileRx("^Subject: H")
		if err != nil || !r.match(buf) {
			b.Fatal("no match")
		}
	}
}

func benchMsg(b *testing.B) *engine.Msg {
	buf := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n" +
		"Subject: Hello World\r\nContent-Type: application/sdp\r\nContent-Length: 37\r\n\r\n" +
		"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000\r\n")
	m := &engine.Msg{Buf: buf}
	if err := rawsip.Scan(buf, &m.Raw); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSearch: KSR.textops.search with a constant pattern (the compiled pattern is cached).
func BenchmarkSearch(b *testing.B) {
	t, m := &Textops{}, benchMsg(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if t.search(m, "^Subject: H") != 1 {
			b.Fatal("no match")
		}
	}
}

// BenchmarkSubstBody: KSR.textops.subst_body rewriting the SDP address (an edit per call, dropped again).
func BenchmarkSubstBody(b *testing.B) {
	t, m := &Textops{}, benchMsg(b)
	mark := m.EditMark()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if t.substBody(m, "/^c=IN IP4 ([0-9.]+)/c=IN IP4 192.0.2.1/") != 1 {
			b.Fatal("no match")
		}
		m.EditRestore(mark)
	}
}

// FuzzTextops: no pattern, expression or replacement makes a function panic, and the outgoing message
// always builds. Run longer with: go test ./modules/textops -run XXX -fuzz FuzzTextops -fuzztime 1m
func FuzzTextops(f *testing.F) {
	for _, s := range [][2]string{{"^Subject: (.*)$", "/^c=(.*)/\\1x/g"}, {"", "//"}, {"(", "/(/x/"}, {"x*", "#a#\\9#s"},
		{"^", "/^/$hdr(X)/g"}, {"[[:alpha:]]+", "/a/\\u$/i"}} {
		f.Add(s[0], s[1], "text\r\n")
	}
	f.Fuzz(func(t *testing.T, re, expr, val string) {
		tx := &Textops{}
		buf := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n" +
			"Subject: Hello World\r\nX-A: one, two\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: 60\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nsome text\r\n--b--\r\n")
		m := &engine.Msg{Buf: buf}
		if err := rawsip.Scan(buf, &m.Raw); err != nil {
			t.Fatal(err)
		}
		tx.search(m, re)
		tx.searchBody(m, re)
		tx.searchAppend(m, re, val)
		tx.replaceAll(m, re, val)
		tx.replaceBodyAll(m, re, val)
		tx.replaceHdrs(m, re, val)
		tx.substMsg(m, expr)
		tx.substBody(m, expr)
		tx.substURI(m, expr)
		tx.substUser(m, expr)
		tx.substHF(m, "X-A", expr, "l")
		tx.removeHFExp(m, re, val)
		tx.removeHFMatch(m, "X-A", "re", re)
		replaceStr(m, re, val, expr)
		appendBodyPart(m, val, re, expr, false)
		removeBodyPart(m, re)
		filterBody(m, re)
		setBodyMultipart(m, val, re, expr)
		inList(re, val, expr, true)
		_ = m.Outgoing()
	})
}
