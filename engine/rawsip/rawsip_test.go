package rawsip

import (
	"errors"
	"testing"
)

func TestScan(t *testing.T) {
	type hdr struct{ name, value string }
	tests := []struct {
		name  string
		msg   string
		err   error
		first string
		hdrs  []hdr
		body  string
	}{
		{name: "CRLF with body",
			msg:   "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello",
			first: "MESSAGE sip:b@x SIP/2.0", hdrs: []hdr{{"Via", "SIP/2.0/UDP h;branch=z9hG4bK1"}, {"Content-Length", "5"}}, body: "hello"},
		{name: "no body",
			msg:   "OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n",
			first: "OPTIONS sip:x SIP/2.0", hdrs: []hdr{{"Call-ID", "a"}}},
		{name: "LF only",
			msg:   "OPTIONS sip:x SIP/2.0\nCall-ID: a\nCSeq: 1 OPTIONS\n\nbody",
			first: "OPTIONS sip:x SIP/2.0", hdrs: []hdr{{"Call-ID", "a"}, {"CSeq", "1 OPTIONS"}}, body: "body"},
		{name: "folded line",
			msg:   "INVITE sip:x SIP/2.0\r\nSubject: first\r\n  second\r\n\tthird\r\nTo: <sip:x>\r\n\r\n",
			first: "INVITE sip:x SIP/2.0", hdrs: []hdr{{"Subject", "first\r\n  second\r\n\tthird"}, {"To", "<sip:x>"}}},
		{name: "compact names and spaces around the colon",
			msg:   "BYE sip:x SIP/2.0\r\nv : SIP/2.0/TCP h\r\ni:abc\r\nl:   0   \r\n\r\n",
			first: "BYE sip:x SIP/2.0", hdrs: []hdr{{"v", "SIP/2.0/TCP h"}, {"i", "abc"}, {"l", "0"}}},
		{name: "empty value", msg: "A b SIP/2.0\r\nX-Empty:\r\n\r\n", first: "A b SIP/2.0", hdrs: []hdr{{"X-Empty", ""}}},
		{name: "reply", msg: "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n", first: "SIP/2.0 200 OK", hdrs: []hdr{{"CSeq", "1 INVITE"}}},
		{name: "empty", msg: "", err: ErrEmpty},
		{name: "one line", msg: "INVITE sip:x SIP/2.0", err: ErrNoHeaderEnd},
		{name: "no empty line", msg: "INVITE sip:x SIP/2.0\r\nTo: x\r\n", err: ErrNoHeaderEnd},
		{name: "unterminated header", msg: "INVITE sip:x SIP/2.0\r\nTo: x", err: ErrNoHeaderEnd},
		{name: "header without colon", msg: "INVITE sip:x SIP/2.0\r\nbroken header\r\n\r\n", err: ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.msg)
			m := Msg{Hdrs: make([]Hdr, 0, 1)}
			err := Scan(buf, &m)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got := string(buf[:m.FirstLineEnd]); got != tt.first {
				t.Errorf("start line %q, want %q", got, tt.first)
			}
			if len(m.Hdrs) != len(tt.hdrs) {
				t.Fatalf("%d headers, want %d", len(m.Hdrs), len(tt.hdrs))
			}
			for i, h := range m.Hdrs {
				if n, v := string(h.Name(buf)), string(h.Value(buf)); n != tt.hdrs[i].name || v != tt.hdrs[i].value {
					t.Errorf("header %d: %q: %q, want %q: %q", i, n, v, tt.hdrs[i].name, tt.hdrs[i].value)
				}
			}
			if got := string(buf[m.Body:]); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if m.HdrsEnd >= m.Body || (len(m.Hdrs) > 0 && int(m.Hdrs[len(m.Hdrs)-1].End) != m.HdrsEnd) {
				t.Errorf("headers end %d, body %d", m.HdrsEnd, m.Body)
			}
		})
	}
}

func TestScanReuses(t *testing.T) {
	var m Msg
	_ = Scan([]byte("A b SIP/2.0\r\nX: 1\r\nY: 2\r\n\r\n"), &m)
	if err := Scan([]byte("A b SIP/2.0\r\nZ: 3\r\n\r\n"), &m); err != nil || len(m.Hdrs) != 1 {
		t.Fatalf("second scan: %v, %d headers", err, len(m.Hdrs))
	}
}

func TestIsAndFind(t *testing.T) {
	buf := []byte("A b SIP/2.0\r\nf: <sip:a>\r\nVIA: v1\r\nCall-Id: c\r\nX-Via: no\r\n\r\n")
	var m Msg
	if err := Scan(buf, &m); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		want int
	}{{"from", 0}, {"via", 1}, {"call-id", 2}, {"x-via", 3}, {"to", -1}, {"v", -1}} {
		if got := m.Find(buf, tt.name); got != tt.want {
			t.Errorf("Find(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
	for c, want := range map[byte]string{'i': "call-id", 'M': "contact", 'l': "content-length", 'v': "via", 'q': ""} {
		if got := Compact(c); got != want {
			t.Errorf("Compact(%q) = %q, want %q", c, got, want)
		}
	}
}

func TestFirstValueEnd(t *testing.T) {
	tests := []struct{ v, first string }{
		{"SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b", "SIP/2.0/UDP a;branch=1"},
		{"SIP/2.0/UDP a", "SIP/2.0/UDP a"},
		{`"Doe, John" <sip:j@x>, <sip:k@x>`, `"Doe, John" <sip:j@x>`},
		{`"a \" , b" <sip:j@x>,<sip:k@x>`, `"a \" , b" <sip:j@x>`},
		{"<sip:a@x;lr,x=1>, <sip:b@x>", "<sip:a@x;lr,x=1>"},
		{`"unterminated, quote`, `"unterminated, quote`},
		{"<unclosed, angle", "<unclosed, angle"},
		{",leading", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := tt.v[:FirstValueEnd([]byte(tt.v))]; got != tt.first {
			t.Errorf("FirstValueEnd(%q): %q, want %q", tt.v, got, tt.first)
		}
	}
}

func TestParam(t *testing.T) {
	tests := []struct {
		params, name, val, span string
		ok                      bool
	}{
		{";branch=z9hG4bK1;rport", "rport", "", ";rport", true},
		{";branch=z9hG4bK1;rport=5070", "rport", "5070", ";rport=5070", true},
		{";BRANCH = z9 ;x", "branch", "z9", ";BRANCH = z9 ", true},
		{";tag=abc, <sip:b>;tag=x", "tag", "abc", ";tag=abc", true},
		{`;q="a;b=c";b=2`, "b", "2", ";b=2", true},
		{";received=1.2.3.4", "rport", "", "", false},
		{"no params", "rport", "", "", false},
		{";rportx=1", "rport", "", "", false},
		{"", "x", "", "", false},
	}
	for _, tt := range tests {
		val, s, e, ok := Param(tt.params, tt.name)
		if ok != tt.ok || val != tt.val || (ok && tt.params[s:e] != tt.span) {
			t.Errorf("Param(%q, %q) = %q, %d..%d, %v; want %q, %q, %v", tt.params, tt.name, val, s, e, ok, tt.val, tt.span, tt.ok)
		}
	}
}

func TestRequestURI(t *testing.T) {
	tests := []struct {
		msg, uri string
		ok       bool
	}{
		{"INVITE sip:bob@example.com;transport=tcp SIP/2.0\r\n\r\n", "sip:bob@example.com;transport=tcp", true},
		{"REGISTER sip:[::1]:5060 SIP/2.0\n\n", "sip:[::1]:5060", true},
		{"SIP/2.0 200 OK\r\n\r\n", "200", true}, // callers check Req first; only positions matter here
		{"INVITE\r\n\r\n", "", false},
		{"INVITE sip:x\r\n\r\n", "", false},
	}
	for _, tt := range tests {
		buf := []byte(tt.msg)
		var m Msg
		if err := Scan(buf, &m); err != nil {
			t.Fatalf("%q: %v", tt.msg, err)
		}
		s, e, ok := RequestURI(buf, &m)
		if ok != tt.ok || (ok && string(buf[s:e]) != tt.uri) {
			t.Errorf("RequestURI(%q) = %d..%d %v, want %q %v", tt.msg, s, e, ok, tt.uri, tt.ok)
		}
	}
}
