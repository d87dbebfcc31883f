package rawsip

import "testing"

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		in   string
		want URI
		ok   bool
	}{
		{"sip:bob@example.com:5070;transport=tcp?subject=x", URI{Scheme: "sip", User: "bob", Host: "example.com", Port: "5070", Params: ";transport=tcp", Headers: "?subject=x"}, true},
		{"sips:127.0.0.1", URI{Scheme: "sips", Host: "127.0.0.1"}, true},
		{"sip:alice:secret@[::1]:5060;lr", URI{Scheme: "sip", User: "alice", Password: "secret", HasPass: true, Host: "[::1]", Port: "5060", Params: ";lr"}, true},
		{"SIP:[2001:db8::1]", URI{Scheme: "SIP", Host: "[2001:db8::1]"}, true},
		{"tel:+123;phone-context=x", URI{Scheme: "tel", User: "+123", Params: ";phone-context=x"}, true},
		{"sip:a@b@c", URI{Scheme: "sip", User: "a@b", Host: "c"}, true},
		{"sip:host:port", URI{}, false},
		{"sip:", URI{}, false},
		{"sip:@", URI{}, false},
		{"http://x", URI{}, false},
		{"nocolon", URI{}, false},
		{"sip:a b", URI{}, false},
		{"sip:[::1", URI{}, false},
		{"sip:[::1]x", URI{}, false},
	} {
		got, ok := ParseURI(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && got.String() != c.in {
			t.Errorf("ParseURI(%q).String() = %q", c.in, got.String())
		}
	}
}

func TestNameAddr(t *testing.T) {
	for _, c := range []struct{ in, display, uri, params string }{
		{`"Alice A" <sip:alice@example.org>;tag=ft1`, `"Alice A"`, "sip:alice@example.org", ";tag=ft1"},
		{`Bob <sip:bob@example.net;transport=tcp>`, "Bob", "sip:bob@example.net;transport=tcp", ""},
		{`sip:carol@example.com;tag=x`, "", "sip:carol@example.com", ";tag=x"},
		{`"a<b" <sip:x@y>`, `"a<b"`, "sip:x@y", ""},
		{` <tel:+1> `, "", "tel:+1", ""},
	} {
		d, u, p, ok := NameAddr(c.in)
		if !ok || d != c.display || u != c.uri || p != c.params {
			t.Errorf("NameAddr(%q) = %q, %q, %q, %v", c.in, d, u, p, ok)
		}
	}
	if _, _, _, ok := NameAddr("<sip:x"); ok {
		t.Error("unterminated <: want false")
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("sip:bob@example.com:5070;transport=tcp")
	f.Add("tel:+1;x")
	f.Fuzz(func(t *testing.T, s string) {
		if u, ok := ParseURI(s); ok {
			if _, ok2 := ParseURI(u.String()); !ok2 {
				t.Errorf("%q parses but its String %q does not", s, u.String())
			}
		}
		NameAddr(s)
	})
}

func TestPortNum(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want int
	}{
		{"sip:a@h", 0}, {"sip:h:5060", 5060}, {"sip:[::1]:5070;lr", 5070}, {"sip:h:0", 0}, {"sip:h:70000", 70000},
	} {
		u, ok := ParseURI(tc.uri)
		if !ok || u.PortNum() != tc.want {
			t.Errorf("%s: ok %v port %d, want %d", tc.uri, ok, u.PortNum(), tc.want)
		}
	}
	if u, _ := ParseURI("sip:h:99999999999"); u.PortNum() <= 65535 {
		t.Errorf("a huge port reads as %d, a valid one", u.PortNum())
	}
}
