package rawsip

import "testing"

// TestRewriteURI: the URIs Kamailio 5.6 wrote for the same actions (measured by the differential test,
// luabind/enginetest/kamdiff).
func TestRewriteURI(t *testing.T) {
	for _, c := range []struct {
		uri  string
		part URIPart
		val  string
		want string // "" when refused
	}{
		{"sip:bob@example.com", URIUser, "carol", "sip:carol@example.com"},
		{"SIP:bob@127.0.0.1", URIPort, "5080", "sip:bob@127.0.0.1:5080"},
		{"sip:alice:secret@example.com:5070;transport=udp?subject=x", URIUser, "carol", "sip:carol:secret@example.com:5070;transport=udp?subject=x"},
		{"sip:alice:secret@example.com", URIUser, "", "sip:example.com"},
		{"sip:bob@example.com:5070;transport=udp", URIHost, "example.net", "sip:bob@example.net:5070;transport=udp"},
		{"sip:bob@example.com:5070", URIPort, "", "sip:bob@example.com"},
		{"tel:+4912345", URIUser, "carol", "tel:carol"},
		{"tel:+4912345", URIHost, "example.net", "sip:+4912345@example.net;user=phone"},
		{"tel:+4912345;phone-context=example.com", URIUser, "carol", "tel:carol;phone-context=example.com"},
		{"tel:+4912345;phone-context=example.com", URIHost, "example.org", "sip:+4912345;phone-context=example.com@example.org;user=phone"},
		{"tel:+4912345;phone-context=example.com", URIPort, "5080", ""},
		{"sip:+4912345;phone-context=example.com@example.org;user=phone", URIUser, "zed", "sip:zed;phone-context=example.com@example.org;user=phone"},
		{"sip:zed;phone-context=example.com@example.org;user=phone", URIUser, "", "sip:;phone-context=example.comexample.org;user=phone"},
		{"sip:+4912345@example.com;user=phone", URIHost, "example.net", "sip:+4912345@example.net;user=phone"},
		{"urn:service:sos", URIUser, "x", ""},
		{"not a uri", URIUser, "x", ""},
	} {
		got, ok := RewriteURI(c.uri, c.part, c.val)
		if !ok {
			got = ""
		}
		if got != c.want {
			t.Errorf("RewriteURI(%q, %d, %q) = %q, want %q", c.uri, c.part, c.val, got, c.want)
		}
	}
}

func BenchmarkRewriteURI(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := RewriteURI("sip:bob@example.com:5070;transport=udp", URIUser, "carol"); !ok {
			b.Fatal("refused")
		}
	}
}
