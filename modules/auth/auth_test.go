package auth_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/auth/authtest"
)

// The script answers 200 when pv_auth_check passes, challenges on -4/-5, and 403 otherwise; the code of
// every call is in the X-RC header of the reply.
const pvScript = `
function ksr_request_route()
	local rc = KSR.auth.pv_auth_check("", "secret", 0, 1)
	KSR.hdr.append_to_reply("X-RC: " .. rc .. "\r\n")
	if rc == 1 then KSR.sl.sl_send_reply(200, "OK"); return end
	if rc == -4 or rc == -5 then
		if KSR.auth.auth_challenge("", 1) ~= 1 then KSR.sl.sl_send_reply(500, "challenge failed") end
		return
	end
	KSR.sl.sl_send_reply(403, "Forbidden")
end`

// expect fails the test unless the reply r has status code and, when wantRC is not "", X-RC wantRC.
func expect(t *testing.T, r *sip.Response, code int, wantRC, what string) {
	t.Helper()
	if r.StatusCode != code || (wantRC != "" && rc(r) != wantRC) {
		t.Fatalf("%s: got %d rc=%s, want %d rc=%s", what, r.StatusCode, rc(r), code, wantRC)
	}
}

func rc(r *sip.Response) string {
	if hd := r.GetHeader("X-RC"); hd != nil {
		return hd.Value()
	}
	return ""
}

// send sends a request with the given extra headers (From/To user alice unless overridden) and returns the
// reply.
func send(c *enginetest.Client, method, user string, extra ...string) *sip.Response {
	ruri := "sip:127.0.0.1"
	req := c.Request(method, ruri, extra...)
	if user != "" {
		req = strings.Replace(req, "To: <sip:127.0.0.1>", "To: <sip:"+user+"@127.0.0.1>", 1)
		req = regexp.MustCompile(`From: <sip:alice@`).ReplaceAllString(req, "From: <sip:"+user+"@")
	}
	c.Send(req)
	return c.RecvResponse(3 * time.Second)
}

func TestRegisterChallengeThenAuthenticate(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\n", pvScript)
	c := p.UDPClient(t)

	r := send(c, "REGISTER", "alice")
	expect(t, r, 401, "-5", "no credentials")
	chs := authtest.Challenges(t, r, "WWW-Authenticate")
	if len(chs) != 2 || chs[0].Alg != "SHA-256" || chs[1].Alg != "MD5" {
		t.Fatalf("challenges: want SHA-256 then MD5, got %+v", chs)
	}
	for _, ch := range chs {
		if ch.Realm != "127.0.0.1" || ch.QOP != "auth" || ch.Stale || len(ch.Nonce) < 20 {
			t.Errorf("challenge %q: want realm 127.0.0.1 (the To host), qop auth, a nonce, no stale", ch.Raw)
		}
	}
	if r.GetHeader("Proxy-Authenticate") != nil {
		t.Errorf("REGISTER challenge has a Proxy-Authenticate header")
	}

	for i, alg := range []string{"SHA-256", "MD5"} {
		t.Run(alg, func(t *testing.T) {
			// both challenges of a reply share one nonce: take a fresh one per algorithm
			ch := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[i]
			k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
			r := send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
			expect(t, r, 200, "1", "valid "+ch.Alg+" credentials")
			// the same nonce and nc again: a replay
			r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
			expect(t, r, 403, "-6", "replayed nonce+nc")
			// a higher nc with the same nonce is fine (credentials caching, RFC 7616 §3.4)
			k.NC = "00000002"
			r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
			expect(t, r, 200, "1", "nc=2")
			// wrong password
			k.Pass, k.NC = "wrong", "00000003"
			r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
			expect(t, r, 403, "-2", "wrong password")
			// the failed attempt did not burn nc=3 (Kamailio flag 32 behaviour)
			k.Pass = "secret"
			r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
			expect(t, r, 200, "", "nc=3 after a failure")
		})
	}
}

func TestCheckFromMismatch(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\n", pvScript)
	c := p.UDPClient(t)
	ch := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[1]
	// bob authenticates (the password is the script's) but registers alice
	k := authtest.Creds{User: "bob", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	r := send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
	expect(t, r, 403, "-8", "auth user bob for alice")
	k.NC = "00000002"
	r = send(c, "REGISTER", "bob", "Authorization: "+k.Answer(ch))
	expect(t, r, 200, "", "bob for bob")
}

func TestExpiredNonceIsStale(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\nnonce_expire = 1\n", pvScript)
	c := p.UDPClient(t)
	ch := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[0]
	time.Sleep(2100 * time.Millisecond)
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	r := send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
	expect(t, r, 401, "-4", "expired nonce")
	fresh := authtest.Challenges(t, r, "WWW-Authenticate")
	if len(fresh) != 2 || !fresh[0].Stale || !fresh[1].Stale || fresh[0].Nonce == ch.Nonce {
		t.Fatalf("want fresh challenges with stale=true, got %+v", fresh)
	}
	r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(fresh[0]))
	expect(t, r, 200, "", "with the fresh nonce")
}

func TestProxyChallengeInvite(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.auth]\nalgorithms = [\"MD5\"]\n", `
function ksr_request_route()
	if KSR.is_ACK() then return end
	local rc = KSR.auth.pv_proxy_authenticate("", "secret", 0)
	KSR.hdr.append_to_reply("X-RC: " .. rc .. "\r\n")
	if rc < 0 then
		KSR.auth.proxy_challenge("", 0)
		return
	end
	KSR.tm.t_reply(200, "OK")
end`)
	c := p.UDPClient(t)
	r := send(c, "INVITE", "")
	expect(t, r, 407, "-5", "INVITE without credentials")
	if r.GetHeader("WWW-Authenticate") != nil {
		t.Errorf("407 carries WWW-Authenticate")
	}
	chs := authtest.Challenges(t, r, "Proxy-Authenticate")
	if len(chs) != 1 || chs[0].Alg != "MD5" || chs[0].QOP != "auth" || chs[0].Realm != "127.0.0.1" {
		t.Fatalf("want one MD5 challenge with qop=auth (the qop parameter) and realm = From host, got %+v", chs)
	}
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "INVITE", URI: "sip:127.0.0.1"}
	r = send(c, "INVITE", "", "Proxy-Authorization: "+k.Answer(chs[0]))
	if r.StatusCode == 100 {
		r = c.RecvResponse(3 * time.Second)
	}
	expect(t, r, 200, "1", "INVITE with credentials")
	// Authorization (WWW) credentials do not answer a proxy challenge
	k.NC = "00000002"
	r = send(c, "INVITE", "", "Authorization: "+k.Answer(chs[0]))
	expect(t, r, 407, "-5", "INVITE with Authorization instead of Proxy-Authorization")
}

// TestChallengeFlags: flags 0 with qop = "" gives no qop; 16 gives stale=true; the realm is quoted safely.
func TestChallengeFlags(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\nqop = \"\"\nalgorithms = [\"MD5\", \"SHA-256\"]\n", `
function ksr_request_route()
	KSR.auth.www_challenge(KSR.hdr.get("X-Realm"), tonumber(KSR.hdr.get("X-Flags")))
end`)
	c := p.UDPClient(t)
	for _, tc := range []struct {
		realm, flags string
		qop          string
		stale        bool
	}{
		{"example.org", "0", "", false},
		{"example.org", "1", "auth", false},
		{"example.org", "2", "auth-int", false},
		{"example.org", "17", "auth", true},
	} {
		r := send(c, "OPTIONS", "", "X-Realm: "+tc.realm, "X-Flags: "+tc.flags)
		chs := authtest.Challenges(t, r, "WWW-Authenticate")
		if r.StatusCode != 401 || len(chs) != 2 || chs[0].Alg != "MD5" || chs[1].Alg != "SHA-256" {
			t.Fatalf("flags %s: got %d %+v", tc.flags, r.StatusCode, chs)
		}
		if chs[0].QOP != tc.qop || chs[0].Stale != tc.stale || chs[0].Realm != tc.realm {
			t.Errorf("flags %s: got %q, want qop %q stale %v", tc.flags, chs[0].Raw, tc.qop, tc.stale)
		}
	}
}

// TestNoQOPCredentials: RFC 2069-style credentials (no qop, no nc) against a challenge without qop.
func TestNoQOPCredentials(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\nqop = \"\"\n", pvScript)
	c := p.UDPClient(t)
	r := send(c, "REGISTER", "alice")
	ch := authtest.Challenges(t, r, "WWW-Authenticate")[0]
	if ch.QOP != "auth" { // the script's auth_challenge passes flag 1
		t.Fatalf("flag 1 must offer qop=auth: %q", ch.Raw)
	}
	ch.QOP = ""
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	r = send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch))
	expect(t, r, 200, "", "no-qop credentials")
}

// TestBadCredentials: anything malformed or foreign is -1, a header for another realm is -5.
func TestBadCredentials(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\n", pvScript)
	c := p.UDPClient(t)
	ch := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[1]
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	good := k.Answer(ch)
	other := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[1]
	for _, tc := range []struct {
		name, hdr, want string
	}{
		{"garbage", `Digest username="alice", realm="127.0.0.1", nonce="x`, "-1"},
		{"missing response", strings.Replace(good, "response=", "xresponse=", 1), "-1"},
		{"forged nonce", strings.Replace(good, ch.Nonce, strings.Repeat("A", len(ch.Nonce)), 1), "-1"},
		{"short response", regexp.MustCompile(`response="[0-9a-f]+"`).ReplaceAllString(good, `response="abcd"`), "-1"},
		{"nonce of another challenge", strings.Replace(good, ch.Nonce, other.Nonce, 1), "-2"},
		{"unknown algorithm", strings.Replace(good, "algorithm=MD5", "algorithm=SHA-512-256", 1), "-1"},
		{"other realm", strings.ReplaceAll(good, `realm="127.0.0.1"`, `realm="elsewhere"`), "-5"},
		{"Basic only", "Basic YWxpY2U6c2VjcmV0", "-5"},
		{"nc zero", strings.Replace(good, "nc=00000001", "nc=00000000", 1), "-1"},
	} {
		r := send(c, "REGISTER", "alice", "Authorization: "+tc.hdr)
		if rc(r) != tc.want {
			t.Errorf("%s: rc=%s (%d), want %s", tc.name, rc(r), r.StatusCode, tc.want)
		}
	}
}

// TestSharedSecret: a nonce made by one node is accepted by another with the same secret, and refused by a
// node with another secret.
func TestSharedSecret(t *testing.T) {
	cfg := "[modules.sl]\n[modules.auth]\nsecret = \"0123456789abcdef-shared\"\n"
	a := enginetest.Start(t, cfg, pvScript)
	b := enginetest.Start(t, cfg, pvScript)
	other := enginetest.Start(t, "[modules.sl]\n[modules.auth]\nsecret = \"another-secret-0123456789\"\n", pvScript)
	ch := authtest.Challenges(t, send(a.UDPClient(t), "REGISTER", "alice"), "WWW-Authenticate")[0]
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	if r := send(b.UDPClient(t), "REGISTER", "alice", "Authorization: "+k.Answer(ch)); r.StatusCode != 200 {
		t.Fatalf("node b with a's nonce: got %d rc=%s", r.StatusCode, rc(r))
	}
	if r := send(other.UDPClient(t), "REGISTER", "alice", "Authorization: "+k.Answer(ch)); rc(r) != "-1" {
		t.Fatalf("node with another secret: got %d rc=%s, want rc=-1", r.StatusCode, rc(r))
	}
}

// TestStatefulChallenge: with a transaction, the challenge goes through tm (a retransmission gets the
// same 401 again, with the same nonce, absorbed by the transaction).
func TestStatefulChallenge(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.auth]\n", `
function ksr_request_route()
	if KSR.tm.t_newtran() <= 0 then return end
	KSR.auth.auth_challenge("", 1)
end`)
	c := p.UDPClient(t)
	req := c.Request("REGISTER", "sip:127.0.0.1")
	c.Send(req)
	r1 := c.RecvResponse(3 * time.Second)
	c.Send(req)
	r2 := c.RecvResponse(3 * time.Second)
	if r1.StatusCode != 401 || r2.StatusCode != 401 {
		t.Fatalf("got %d, %d", r1.StatusCode, r2.StatusCode)
	}
	n1 := authtest.Challenges(t, r1, "WWW-Authenticate")[0].Nonce
	n2 := authtest.Challenges(t, r2, "WWW-Authenticate")[0].Nonce
	if n1 != n2 {
		t.Fatalf("the retransmission got a new challenge (nonce %s, then %s): not through the transaction", n1, n2)
	}
}

// TestConsumeAndHasCredentials: has_credentials finds credentials by realm in either header;
// consume_credentials removes the header that authenticated from the relayed request only.
func TestConsumeAndHasCredentials(t *testing.T) {
	p := enginetest.Start(t, "[modules.auth]\n", "function ksr_request_route() end")
	pv := p.Export(t, "auth", "pv_proxy_authenticate")
	has := p.Export(t, "auth", "has_credentials")
	consume := p.Export(t, "auth", "consume_credentials")
	inv := "INVITE sip:bob@example.org SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n" +
		"From: <sip:alice@example.org>;tag=1\nTo: <sip:bob@example.org>\nCall-ID: c1\nCSeq: 1 INVITE\n"
	m := enginetest.Msg(t, p, inv+"Content-Length: 0\n\n")
	if got := enginetest.Call(t, pv, m, "", "secret", 4); got != "number:-5" {
		t.Fatalf("no credentials: %s", got)
	}
	if got := enginetest.Call(t, consume, m); got != "number:-1" {
		t.Fatalf("consume_credentials without credentials: %s", got)
	}
	hdr := m.AVPs["digest_challenge"][0].S
	if !strings.HasPrefix(hdr, "Proxy-Authenticate: Digest realm=\"example.org\"") || !strings.Contains(hdr, `qop="auth"`) {
		t.Fatalf("flag 4 challenge in $avp(digest_challenge): %q", hdr)
	}
	ch := authtest.ParseChallenge(t, strings.TrimSpace(strings.SplitN(strings.TrimPrefix(hdr, "Proxy-Authenticate: "), "\r\n", 2)[0]))
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "INVITE", URI: "sip:bob@example.org"}
	m = enginetest.Msg(t, p, inv+"X-Before: 1\nProxy-Authorization: "+k.Answer(ch)+"\nX-After: 1\nContent-Length: 0\n\n")
	for _, tc := range []struct{ realm, want string }{{"example.org", "number:1"}, {"", "number:1"}, {"other.org", "number:-1"}} {
		if got := enginetest.Call(t, has, m, tc.realm); got != tc.want {
			t.Errorf("has_credentials(%q) = %s, want %s", tc.realm, got, tc.want)
		}
	}
	if got := enginetest.Call(t, pv, m, "example.org", "secret", 0); got != "number:1" {
		t.Fatalf("valid credentials: %s", got)
	}
	if got := enginetest.Call(t, consume, m); got != "number:1" {
		t.Fatalf("consume_credentials: %s", got)
	}
	out := string(m.Outgoing())
	if strings.Contains(out, "Proxy-Authorization") || !strings.Contains(out, "X-Before: 1\r\nX-After: 1\r\n") {
		t.Fatalf("relayed request after consume_credentials:\n%s", out)
	}
	if v, _ := m.Header("Proxy-Authorization"); v == "" {
		t.Errorf("the script no longer sees the received header")
	}
}

// TestNotChallenged: ACK and CANCEL are neither challenged nor authenticated (auth_challenge → 1, no reply;
// pv_auth_check → 1), as in Kamailio.
func TestNotChallenged(t *testing.T) {
	p := enginetest.Start(t, "[modules.auth]\n", "function ksr_request_route() end")
	challenge := p.Export(t, "auth", "auth_challenge")
	check := p.Export(t, "auth", "pv_auth_check")
	for _, method := range []string{"ACK", "CANCEL"} {
		m := enginetest.Msg(t, p, method+" sip:bob@example.org SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n"+
			"From: <sip:alice@example.org>;tag=1\nTo: <sip:bob@example.org>\nCall-ID: c1\nCSeq: 1 "+method+"\nContent-Length: 0\n\n")
		if got := enginetest.Call(t, challenge, m, "", 1); got != "number:1" || m.Replied {
			t.Errorf("auth_challenge on %s: %s, replied %v", method, got, m.Replied)
		}
		if got := enginetest.Call(t, check, m, "", "x", 0, 1); got != "number:1" {
			t.Errorf("pv_auth_check on %s: %s", method, got)
		}
	}
}

// TestSeveralCredentials: credentials for another realm and for an algorithm not offered are passed over
// for the ones that fit.
func TestSeveralCredentials(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\nalgorithms = [\"MD5\"]\n", pvScript)
	c := p.UDPClient(t)
	ch := authtest.Challenges(t, send(c, "REGISTER", "alice"), "WWW-Authenticate")[0]
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	good := k.Answer(ch)
	r := send(c, "REGISTER", "alice",
		"Authorization: "+strings.ReplaceAll(good, `realm="127.0.0.1"`, `realm="elsewhere"`),
		"Authorization: "+strings.Replace(good, "algorithm=MD5", "algorithm=SHA-256", 1),
		"Authorization: "+good)
	if r.StatusCode != 200 {
		t.Fatalf("got %d rc=%s, want 200", r.StatusCode, rc(r))
	}
}

// TestTCP: the challenge and the authenticated reply go back on the TCP connection.
func TestTCP(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.auth]\n", pvScript)
	c := p.TCPClient(t)
	r := send(c, "REGISTER", "alice")
	if r.StatusCode != 401 {
		t.Fatalf("got %d", r.StatusCode)
	}
	ch := authtest.Challenges(t, r, "WWW-Authenticate")[0]
	k := authtest.Creds{User: "alice", Pass: "secret", Method: "REGISTER", URI: "sip:127.0.0.1"}
	if r := send(c, "REGISTER", "alice", "Authorization: "+k.Answer(ch)); r.StatusCode != 200 {
		t.Fatalf("over TCP: got %d rc=%s", r.StatusCode, rc(r))
	}
}
