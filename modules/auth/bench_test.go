package auth_test

import (
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/auth/authtest"
)

// BenchmarkVerify: pv_www_authenticate of a valid credential (parse the header, check the nonce MAC and
// expiry, compute HA1 from the password and the response, compare in constant time). nonce_count is off so
// the same message can be verified again and again (with it on, one nc-table lookup and one commit more).
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		b.Run(alg, func(b *testing.B) {
			p := enginetest.Start(b, "[modules.auth]\nnonce_count = false\nalgorithms = [\""+alg+"\"]\n", "function ksr_request_route() end")
			fn := p.Export(b, "auth", "pv_www_authenticate").(func(*engine.Msg, string, string, int) int)
			reg := "REGISTER sip:example.org SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n" +
				"From: <sip:alice@example.org>;tag=1\nTo: <sip:alice@example.org>\nCall-ID: bench\nCSeq: 1 REGISTER\n"
			m := enginetest.Msg(b, p, reg+"Content-Length: 0\n\n")
			if rc := fn(m, "", "secret", 4); rc != -5 {
				b.Fatalf("no credentials: rc %d", rc)
			}
			ch := authtest.ParseChallenge(b, strings.TrimSpace(strings.TrimPrefix(m.AVPs["digest_challenge"][0].S, "WWW-Authenticate: ")))
			k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:example.org"}
			m = enginetest.Msg(b, p, reg+"Authorization: "+k.Answer(ch)+"\nContent-Length: 0\n\n")
			if rc := fn(m, "", "secret", 0); rc != 1 {
				b.Fatalf("valid credentials: rc %d", rc)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if fn(m, "", "secret", 0) != 1 {
					b.Fatal("verification failed")
				}
			}
		})
	}
}
