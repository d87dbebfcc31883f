package sanity

import "testing"

// The cases the engine's parser refuses before the script (so the wire tests cannot send them) are checked
// here against the results Kamailio 5.6.3 gave for them (kamailio_test.go sends them to Kamailio).
func TestValidUint(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"0", true}, {"4294967295", true},
		{"4294967296", true}, // Kamailio's bound, one above uint32: accepted (Kamailio 5.6.3 answers 200)
		{"4294967297", false}, {"99999999999", false}, {"5000000000", false},
		{"-1", false}, {"1a", false}, {" 1", false},
	} {
		if got := validUint([]byte(c.in)); got != c.want {
			t.Errorf("validUint(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestValidURI(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"sip:bob@127.0.0.1", true}, {"sips:bob@example.com:5061;transport=tcp", true}, {"sip:[::1]:5060", true},
		{"tel:+123", true}, {"urn:service:sos", true}, {"SIP:bob@EXAMPLE.com", true},
		{"http://bob@127.0.0.1", false}, {"sip:bob@127.0.0.1:99999", false}, {"sip:bob@127.0.0.1:ab", false},
		{"sip:bob@", false}, {"sip:alice@[::1", false}, {"sip:@@@:x", false}, {"htp:///", false}, {"", false},
		{"sip:bob@127.0.0.1:", false},
	} {
		if got := validURI(c.in); got != c.want {
			t.Errorf("validURI(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   int
		reason string
	}{
		{`Digest username="u", realm="r", nonce="n", uri="sip:x", response="0"`, passed, ""},
		{`digest username=u,realm=r,nonce=n,uri="sip:x",response=0`, passed, ""},
		{`Basic dXNlcjpwYXNz`, notApplicable, ""},
		{`Digest realm="r", nonce="n", uri="sip:x", response="0"`, failed, "Bad Auth Credentials"},
		{`Digest username="u", realm="r", nonce="", uri="sip:x", response="0"`, failed, "Auth Empty Nonce"},
		{`Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, nc=1, cnonce="c"`, passed, ""},
		{`Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth`, failed, "Bad Auth Credentials"},
		{`Digest username="u, realm`, failed, "Bad Auth Header"},
		{`Digest garbage`, failed, "Bad Auth Header"},
	} {
		got, reason := checkCredentials([]byte(c.in))
		if got != c.want || reason != c.reason {
			t.Errorf("checkCredentials(%q) = %d %q, want %d %q", c.in, got, reason, c.want, c.reason)
		}
	}
}
