package auth

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string // field → value; nil = error expected
		err  error
	}{
		{in: `Digest username="alice", realm="example.org", nonce="abc", uri="sip:example.org", response="0123", algorithm=MD5, cnonce="c1", qop=auth, nc=00000001, opaque="op"`,
			want: map[string]string{"username": "alice", "realm": "example.org", "nonce": "abc", "uri": "sip:example.org",
				"response": "0123", "algorithm": "MD5", "cnonce": "c1", "qop": "auth", "nc": "00000001", "opaque": "op"}},
		{in: "digest USERNAME=\"a\\\"b\",\r\n realm=\"r\\\\x\" ,nonce=n", // case, escapes, folding, token values
			want: map[string]string{"username": `a"b`, "realm": `r\x`, "nonce": "n"}},
		{in: `Digest username="", realm="r",, nonce="n",`, want: map[string]string{"username": "", "realm": "r", "nonce": "n"}},
		{in: `Digest userhash=true, username="u", charset=UTF-8`, want: map[string]string{"username": "u"}},
		{in: `Basic YWxpY2U6c2VjcmV0`, err: errNotDigest},
		{in: `Digest username="a", username="b"`, err: errSyntax},
		{in: `Digest username="a`, err: errSyntax},
		{in: `Digest username=`, err: errSyntax},
		{in: `Digest username "a"`, err: errSyntax},
		{in: `Digest username="a" realm="b"`, err: errSyntax},
		{in: `Digestusername="a"`, err: errNotDigest},
		{in: `Digest, username="a"`, err: errSyntax},
		{in: ``, err: errSyntax},
		{in: `"Digest"`, err: errSyntax},
	} {
		c, err := ParseCredentials([]byte(tc.in))
		if tc.want == nil {
			if err != tc.err {
				t.Errorf("%q: err %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		for _, name := range []string{"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "qop", "nc", "opaque"} {
			got := *c.field([]byte(name))
			want, present := tc.want[name]
			if (got != nil) != present || string(got) != want {
				t.Errorf("%q: %s = %q (present %v), want %q (present %v)", tc.in, name, got, got != nil, want, present)
			}
		}
	}
}

// FuzzParseCredentials: no input panics, and whatever parses re-parses to the same fields once written
// back in canonical form.
func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{
		`Digest username="alice", realm="example.org", nonce="abc", uri="sip:x", response="0123", algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001`,
		`Digest username="a\"b", realm=r`, `Basic x`, `Digest ,,,`, "Digest a=\"\\", `Digest a="b",c=d, e = "f"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseCredentials(in)
		if err != nil {
			return
		}
		var b bytes.Buffer
		b.WriteString("Digest ")
		names := []string{"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "qop", "nc", "opaque"}
		first := true
		for _, n := range names {
			v := *c.field([]byte(n))
			if v == nil {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(n + `="`)
			for _, ch := range v {
				if ch == '"' || ch == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(ch)
			}
			b.WriteByte('"')
		}
		c2, err := ParseCredentials(b.Bytes())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", b.String(), in, err)
		}
		for _, n := range names {
			if !bytes.Equal(*c.field([]byte(n)), *c2.field([]byte(n))) {
				t.Fatalf("%s changed: %q → %q (input %q)", n, *c.field([]byte(n)), *c2.field([]byte(n)), in)
			}
		}
	})
}

// TestRFC7616Example: the SHA-256 and MD5 examples of RFC 7616 §3.9.1.
func TestRFC7616Example(t *testing.T) {
	c := Credentials{Username: []byte("Mufasa"), Realm: []byte("http-auth@example.org"), URI: []byte("/dir/index.html"),
		Nonce:  []byte("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
		CNonce: []byte("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"), QOP: []byte("auth"), NC: []byte("00000001")}
	for _, tc := range []struct {
		alg  Algorithm
		want string
	}{
		{SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{MD5, "8ca523f5e9506fed4657c9700eebdbec"},
	} {
		ha1 := HA1(tc.alg, "Mufasa", "http-auth@example.org", "Circle of Life")
		var out [64]byte
		if got := string(expectedResponse(out[:], tc.alg, []byte(ha1), &c, "GET", nil)); got != tc.want {
			t.Errorf("%s: response %s, want %s", tc.alg, got, tc.want)
		}
	}
}

func TestNonce(t *testing.T) {
	n := newNoncer([]byte("k1-0123456789abcdef"))
	s := n.make(1000)
	if len(s) != nonceLen || strings.ContainsAny(s, "+/=") {
		t.Fatalf("nonce %q: want %d base64url characters", s, nonceLen)
	}
	key, exp, ok := n.check([]byte(s))
	if !ok || exp != 1000 {
		t.Fatalf("check: ok=%v exp=%d", ok, exp)
	}
	if s2 := n.make(1000); s2 == s {
		t.Fatalf("two nonces alike: %s", s)
	}
	other := newNoncer([]byte("k2-0123456789abcdef"))
	if _, _, ok := other.check([]byte(s)); ok {
		t.Fatal("a nonce validates under another secret")
	}
	// tampering with the expiry (first characters) breaks the MAC
	b := []byte(s)
	b[3] ^= 1
	if b[3] == '+' || b[3] == '/' { // stay in the alphabet
		b[3] = 'A'
	}
	if _, _, ok := n.check(b); ok {
		t.Fatal("a tampered nonce validates")
	}
	for _, bad := range []string{"", "short", s + "x", strings.Repeat("!", nonceLen)} {
		if _, _, ok := n.check([]byte(bad)); ok {
			t.Errorf("%q validates", bad)
		}
	}
	// nc table: growing nc only, concurrent commits of one nc: exactly one wins
	tb := newNCTable(ncShards * 2)
	if tb.commit(key, 1, 1000, 0) != ncOK || tb.commit(key, 1, 1000, 0) != ncReplay || !tb.replayed(key, 1) ||
		tb.replayed(key, 2) || tb.commit(key, 5, 1000, 0) != ncOK || tb.commit(key, 3, 1000, 0) != ncReplay {
		t.Fatal("nc table: wrong replay decisions")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tb.commit(key, 9, 1000, 0) == ncOK {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent commits of nc 9 won, want 1", wins)
	}
	tb.sweep(1001)
	if tb.n.Load() != 0 || tb.replayed(key, 1) {
		t.Fatal("sweep kept an expired nonce")
	}
}

// TestNCTableBound: a full shard answers ncFull (the caller turns it into a stale nonce), after sweeping.
func TestNCTableBound(t *testing.T) {
	tb := newNCTable(ncShards) // one entry per shard
	var k1, k2 nonceKey
	k1[0], k2[0] = 1, 2 // same shard (byte 8 is 0 for both)
	if tb.commit(k1, 1, 100, 0) != ncOK || tb.commit(k2, 1, 100, 0) != ncFull {
		t.Fatal("the bound was not applied")
	}
	if tb.commit(k2, 1, 100, 101) != ncOK { // k1 expired: swept to make room
		t.Fatal("an expired entry was not swept to make room")
	}
}

// BenchmarkNCCommit: the replay check and commit of nonce_count for one authenticated request, from all
// cores at once (the table is shared by the workers).
func BenchmarkNCCommit(b *testing.B) {
	tb := newNCTable(1 << 18)
	n := newNoncer([]byte("bench-secret-0123456789"))
	keys := make([]nonceKey, 1024)
	for i := range keys {
		keys[i], _, _ = n.check([]byte(n.make(1 << 40)))
	}
	var seq atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1)) * 7919
		nc := uint32(0)
		for pb.Next() {
			k := keys[i%len(keys)]
			i++
			nc++
			if !tb.replayed(k, nc) {
				tb.commit(k, nc, 1<<40, 0)
			}
		}
	})
}

// BenchmarkNonce: making and checking one nonce (HMAC-SHA256 each).
func BenchmarkNonce(b *testing.B) {
	n := newNoncer([]byte("bench-secret-0123456789"))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := n.check([]byte(n.make(1 << 40))); !ok {
			b.Fatal("nonce refused")
		}
	}
}
