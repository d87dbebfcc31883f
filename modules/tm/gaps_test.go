package tm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const plainRelay = `
function ksr_request_route()
	if KSR.is_ACK() or KSR.is_CANCEL() then KSR.tm.t_relay() return 1 end
	if KSR.tm.t_check_trans() == 0 then return end
	KSR.tm.t_relay()
end`

// forkScript relays to the R-URI and to the other UASes as parallel branches.
func forkScript(pp *peers) string {
	var b strings.Builder
	b.WriteString("function ksr_request_route()\n")
	b.WriteString("\tif KSR.is_ACK() or KSR.is_CANCEL() then KSR.tm.t_relay() return 1 end\n")
	for i := 1; i < len(pp.uas); i++ {
		fmt.Fprintf(&b, "\tKSR.corex.append_branch_uri(%q)\n", pp.uasURI(i))
	}
	b.WriteString("\tKSR.tm.t_relay()\nend\n")
	return b.String()
}

// TestRetransmissionSchedule: toward a silent next hop over UDP, an INVITE is sent again after T1, 2·T1,
// 4·T1, 8·T1 (timer A doubles without a cap, RFC 3261 §17.1.1.2); a non-INVITE doubles up to T2 and then
// stays at T2 (timer E, §17.1.2.2). T1 = 100 ms, T2 = 200 ms.
func TestRetransmissionSchedule(t *testing.T) {
	const cfg = "[modules.tm]\nretr_timer1 = 100\nretr_timer2 = 200\nfr_timer = 1700\n" +
		"[modules.rr]\n[modules.sl]\n[modules.corex]\n[modules.tmx]\n"
	for _, tc := range []struct {
		method string
		want   []time.Duration // intervals between arrivals
	}{
		{"INVITE", []time.Duration{100, 200, 400, 800}},
		{"OPTIONS", []time.Duration{100, 200, 200, 200, 200, 200}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			pp := startPeers(t, cfg, 1, func(*peers) string { return plainRelay })
			pp.uac.Send(pp.uac.Request(tc.method, pp.uasURI(0)))
			var at []time.Time
			for range len(tc.want) + 1 {
				recvRequest(t, pp.uas[0], tc.method, 2*time.Second)
				at = append(at, time.Now())
			}
			for i, w := range tc.want {
				w *= time.Millisecond
				got := at[i+1].Sub(at[i])
				// the timer runs on a heap with millisecond precision; a loaded machine delays, never hastens
				if got < w-30*time.Millisecond || got > w+150*time.Millisecond {
					t.Errorf("interval %d: %v, want %v (all: %v)", i+1, got.Round(time.Millisecond), w, intervals(at))
				}
			}
		})
	}
}

// TestNegativeReplyRetransmissionSchedule: a negative final reply to an INVITE over UDP is sent upstream
// again until the ACK after T1, 2·T1, 4·T1, then every T2 (timer G, RFC 3261 §17.2.1). T1 = 100 ms,
// T2 = 400 ms.
func TestNegativeReplyRetransmissionSchedule(t *testing.T) {
	const cfg = "[modules.tm]\nretr_timer1 = 100\nretr_timer2 = 400\n[modules.rr]\n[modules.sl]\n[modules.corex]\n[modules.tmx]\n"
	pp := startPeers(t, cfg, 1, func(*peers) string { return plainRelay })
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	answer(t, pp.uas[0], recvRequest(t, pp.uas[0], "INVITE", 2*time.Second), "486 Busy Here")
	want := []time.Duration{100, 200, 400, 400, 400}
	var at []time.Time
	for range len(want) + 1 {
		recvStatus(t, pp.uac, 486, 2*time.Second)
		at = append(at, time.Now())
	}
	for i, w := range want {
		w *= time.Millisecond
		// the timer runs on a heap with millisecond precision; a loaded machine delays, never hastens
		if got := at[i+1].Sub(at[i]); got < w-30*time.Millisecond || got > w+150*time.Millisecond {
			t.Errorf("interval %d: %v, want %v (all: %v)", i+1, got.Round(time.Millisecond), w, intervals(at))
		}
	}
}

func intervals(at []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(at); i++ {
		out = append(out, at[i].Sub(at[i-1]).Round(time.Millisecond))
	}
	return out
}

// Test2xxRetransmissionRelayed: a 200 for an INVITE that the callee sends again (it has no ACK yet) is
// relayed to the caller again: the 2xx is the UAs' business end to end (RFC 3261 §13.3.1.4, §16.7).
func Test2xxRetransmissionRelayed(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(*peers) string { return plainRelay })
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	ok := replyTo(string(inv), "200 OK", "callee1")
	pp.uas[0].Send(ok)
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 200 {
		t.Fatalf("UAC got %s", startLine(final))
	}
	for i := range 2 {
		pp.uas[0].Send(ok)
		b, err := pp.uac.TryRecv(2 * time.Second)
		if err != nil || statusCode(b) != 200 {
			t.Fatalf("retransmission %d of the 200 not relayed: %v %s", i+1, err, b)
		}
	}
}

// Test6xxCancelsRingingBranches: a 6xx on one branch ends the search (RFC 3261 §16.7 step 5): the branches
// still ringing get a CANCEL and the caller gets the 6xx, not their 487.
func Test6xxCancelsRingingBranches(t *testing.T) {
	pp := startPeers(t, peerConfig, 3, forkScript)
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	var inv [3][]byte
	for i := range inv {
		inv[i] = recvRequest(t, pp.uas[i], "INVITE", 2*time.Second)
		pp.uas[i].Send(replyTo(string(inv[i]), "180 Ringing", fmt.Sprintf("r%d", i)))
	}
	answer(t, pp.uas[0], inv[0], "603 Decline")
	for i := 1; i < 3; i++ {
		c := recvRequest(t, pp.uas[i], "CANCEL", 2*time.Second)
		pp.uas[i].Send(replyTo(string(c), "200 OK", fmt.Sprintf("r%d", i)))
		answer(t, pp.uas[i], inv[i], "487 Request Terminated")
	}
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 603 {
		t.Fatalf("UAC got %s, want the 603", startLine(final))
	}
}

// TestChallengesAggregated: when branches answer 401 and 407 and another 4xx, a challenge is the final
// answer (RFC 3261 §16.7 step 6) and it carries the challenges of every branch (step 7, Kamailio's
// aggregate_challenges), so the caller authenticates to all at once.
func TestChallengesAggregated(t *testing.T) {
	pp := startPeers(t, peerConfig, 3, forkScript)
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	var inv [3][]byte
	for i := range inv {
		inv[i] = recvRequest(t, pp.uas[i], "INVITE", 2*time.Second)
	}
	withHdr := func(reply, h string) string {
		return strings.Replace(reply, "Content-Length:", h+"\r\nContent-Length:", 1)
	}
	send := func(i int, status, h string) {
		pp.uas[i].Send(withHdr(replyTo(string(inv[i]), status, fmt.Sprintf("c%d", i)), h))
		recvRequest(t, pp.uas[i], "ACK", 2*time.Second)
	}
	send(0, "486 Busy Here", "X-Other: 1")
	send(1, "407 Proxy Authentication Required", `Proxy-Authenticate: Digest realm="p1.example.org", nonce="n1"`)
	send(2, "401 Unauthorized", `WWW-Authenticate: Digest realm="b.example.org", nonce="n2"`)
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if c := statusCode(final); c != 401 && c != 407 {
		t.Fatalf("UAC got %s, want a 401 or 407", startLine(final))
	}
	if got := header(final, "Proxy-Authenticate"); len(got) != 1 || !strings.Contains(got[0], `nonce="n1"`) {
		t.Errorf("Proxy-Authenticate %q, want the 407's", got)
	}
	if got := header(final, "WWW-Authenticate"); len(got) != 1 || !strings.Contains(got[0], `nonce="n2"`) {
		t.Errorf("WWW-Authenticate %q, want the 401's", got)
	}
	if got := header(final, "X-Other"); len(got) != 0 {
		t.Errorf("headers of the 486 leaked into the challenge: %q", got)
	}
}

// TestCallee100NotRelayed: a 100 Trying is hop by hop (RFC 3261 §16.7 step 3): the caller sees the proxy's
// own 100 only, never the callee's.
func TestCallee100NotRelayed(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(*peers) string { return plainRelay })
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	trying := strings.Replace(replyTo(string(inv), "100 Trying", ""), ";tag=\r\n", "\r\n", 1)
	pp.uas[0].Send(strings.Replace(trying, "Content-Length:", "X-From-Callee: yes\r\nContent-Length:", 1))
	pp.uas[0].Send(replyTo(string(inv), "180 Ringing", "cc"))
	pp.uas[0].Send(replyTo(string(inv), "200 OK", "cc"))
	n100 := 0
	for {
		b, err := pp.uac.TryRecv(2 * time.Second)
		if err != nil {
			t.Fatalf("UAC: no final reply: %v", err)
		}
		if len(header(b, "X-From-Callee")) > 0 {
			t.Fatalf("the callee's 100 reached the caller:\n%s", b)
		}
		if statusCode(b) == 100 {
			n100++
		}
		if statusCode(b) >= 200 {
			break
		}
	}
	if n100 != 1 {
		t.Errorf("UAC got %d 100 Trying, want 1 (the proxy's own)", n100)
	}
}

// TestTReplyBody: a body set with textops.set_reply_body goes out in the transaction's local reply with
// its Content-Type and length (not the Content-Type alone).
func TestTReplyBody(t *testing.T) {
	pp := startPeers(t, peerConfig+"[modules.textops]\n", 0, func(*peers) string {
		return `
function ksr_request_route()
	KSR.tm.t_newtran()
	KSR.textops.set_reply_body("no route here", "text/plain")
	KSR.tm.t_reply(404, "Not Found")
end`
	})
	pp.uac.Send(pp.uac.Request("MESSAGE", "sip:nobody@example.org"))
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 404 {
		t.Fatalf("UAC got %s", startLine(final))
	}
	_, body, _ := strings.Cut(string(final), "\r\n\r\n")
	if ct, cl := header(final, "Content-Type"), header(final, "Content-Length"); body != "no route here" ||
		len(ct) != 1 || ct[0] != "text/plain" || len(cl) != 1 || cl[0] != "13" {
		t.Fatalf("reply body %q, Content-Type %q, Content-Length %q:\n%s", body, ct, cl, final)
	}
}
