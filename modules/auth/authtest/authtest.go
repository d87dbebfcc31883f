// Package authtest is the client side of HTTP digest (RFC 7616) for the tests of auth and auth_db:
// parsing a challenge and computing the credentials that answer it. The arithmetic is written here again,
// independently of the module, so that a test checks the module against the RFC, not against itself.
// Only tests import it.
package authtest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// H is the digest hash of s for algorithm alg ("SHA-256", else MD5), in lower-case hex.
func H(alg, s string) string {
	if alg == "SHA-256" {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// HA1 is H(user:realm:password), the secret a users file or database stores instead of the password.
func HA1(alg, user, realm, pass string) string { return H(alg, user+":"+realm+":"+pass) }

// Challenge is one parsed WWW-/Proxy-Authenticate header.
type Challenge struct {
	Realm, Nonce, QOP, Alg string
	Stale                  bool
	Raw                    string
}

var paramRE = regexp.MustCompile(`(\w+)=("([^"]*)"|[^,\s]+)`)

// ParseChallenge parses a header value "Digest realm=..., nonce=..."; it fails the test when v is not a
// Digest challenge.
func ParseChallenge(t testing.TB, v string) Challenge {
	t.Helper()
	if !strings.HasPrefix(v, "Digest ") {
		t.Fatalf("challenge %q: not Digest", v)
	}
	c := Challenge{Raw: v}
	for _, m := range paramRE.FindAllStringSubmatch(v, -1) {
		val := m[2]
		if m[3] != "" || strings.HasPrefix(val, `"`) {
			val = m[3]
		}
		switch m[1] {
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "qop":
			c.QOP = val
		case "algorithm":
			c.Alg = val
		case "stale":
			c.Stale = val == "true"
		}
	}
	return c
}

// Challenges parses every header name (WWW-Authenticate or Proxy-Authenticate) of r, in order.
func Challenges(t testing.TB, r *sip.Response, name string) []Challenge {
	t.Helper()
	var out []Challenge
	for _, hd := range r.GetHeaders(name) {
		out = append(out, ParseChallenge(t, hd.Value()))
	}
	return out
}

// Creds builds a Digest credentials header value answering a challenge. NC and CNonce default to
// 00000001 and 0a4f113b.
type Creds struct {
	User, Pass, Method, URI, NC, CNonce string
}

// Answer is the credentials value (after "Authorization: ") answering c: with qop=auth when c offers a
// qop, else RFC 2069-style (no qop, nc or cnonce).
func (k Creds) Answer(c Challenge) string {
	ha1 := HA1(c.Alg, k.User, c.Realm, k.Pass)
	ha2 := H(c.Alg, k.Method+":"+k.URI)
	if c.QOP == "" {
		resp := H(c.Alg, ha1+":"+c.Nonce+":"+ha2)
		return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s`,
			k.User, c.Realm, c.Nonce, k.URI, resp, c.Alg)
	}
	nc, cn := k.NC, k.CNonce
	if nc == "" {
		nc = "00000001"
	}
	if cn == "" {
		cn = "0a4f113b"
	}
	resp := H(c.Alg, ha1+":"+c.Nonce+":"+nc+":"+cn+":auth:"+ha2)
	return fmt.Sprintf(`Digest username="%s",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=%s,cnonce="%s",qop=auth,nc=%s`,
		k.User, c.Realm, c.Nonce, k.URI, resp, c.Alg, cn, nc)
}
