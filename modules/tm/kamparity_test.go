package tm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// cancelScript relays every INVITE to all UASes (parallel forking), CANCEL and ACK through tm.
func cancelScript(pp *peers) string {
	var app strings.Builder
	for i := 1; i < len(pp.uas); i++ {
		fmt.Fprintf(&app, "\tKSR.corex.append_branch_uri(%q)\n", pp.uasURI(i))
	}
	return `
function ksr_request_route()
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
` + app.String() + `	KSR.tm.t_relay()
end
`
}

// sendCancel sends the CANCEL of invite and reads the 200 that answers it, skipping provisionals; it returns
// a final reply to the INVITE that came first (with cancel_b_method 0 the local 487 precedes the 200, in
// Kamailio's order), or nil.
func sendCancel(t *testing.T, pp *peers, invite string) []byte {
	t.Helper()
	pp.uac.Send(cancelOf(invite))
	var final []byte
	for deadline := time.Now().Add(2 * time.Second); ; {
		b, err := pp.uac.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("UAC: no 200 for the CANCEL: %v", err)
		}
		switch {
		case statusCode(b) == 200 && header(b, "CSeq")[0] == "1 CANCEL":
			return final
		case statusCode(b) >= 200 && final == nil:
			final = b
		case statusCode(b) >= 200:
			t.Fatalf("UAC: want 200 for the CANCEL, got %s", startLine(b))
		}
	}
}

// TestCancelBMethod checks Kamailio's cancel_b_method for a CANCEL that comes before the callee answered
// anything: 0 answers 487 at once and stops the INVITE; 1 (the default) keeps retransmitting the INVITE,
// cancels the branch once it rings, and the caller gets the branch's own final reply (a 200 that crossed
// the CANCEL goes up alone, never after a 487); 2 sends the CANCEL at once.
func TestCancelBMethod(t *testing.T) {
	for _, method := range []int{0, 1, 2} {
		t.Run(fmt.Sprint(method), func(t *testing.T) {
			cfg := strings.Replace(peerConfig, "[modules.tm]\n", fmt.Sprintf("[modules.tm]\ncancel_b_method = %d\n", method), 1)
			if method == 1 {
				cfg = peerConfig // the default
			}
			pp := startPeers(t, cfg, 1, cancelScript)
			invite := pp.uac.Request("INVITE", pp.uasURI(0))
			pp.uac.Send(invite)
			inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			early := sendCancel(t, pp, invite)
			if early != nil && method != 0 {
				t.Fatalf("UAC got %s before the 200 for the CANCEL", startLine(early))
			}
			switch method {
			case 0:
				final := early
				if final == nil {
					final, _ = recvFinal(t, pp.uac, 2*time.Second)
				}
				if statusCode(final) != 487 {
					t.Fatalf("UAC got %s, want 487 at once", startLine(final))
				}
				expectSilence(t, pp.uas[0], 1200*time.Millisecond) // no INVITE retransmission, no CANCEL
			case 1:
				// the INVITE is still retransmitted (timer A, T1 = 500 ms) and nothing is answered yet
				if b := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second); header(b, "Via")[0] != header(inv, "Via")[0] {
					t.Fatalf("retransmission with another Via: %s", header(b, "Via")[0])
				}
				expectSilence(t, pp.uac, 300*time.Millisecond)
				pp.uas[0].Send(replyTo(string(inv), "180 Ringing", "callee"))
				c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second)
				if h := header(c, "CSeq"); len(h) != 1 || h[0] != "1 CANCEL" {
					t.Fatalf("CANCEL CSeq %v", h)
				}
				// the callee answered 200 before it saw the CANCEL: the caller gets that 200, alone
				pp.uas[0].Send(replyTo(string(inv), "200 OK", "callee"))
				final, prov := recvFinal(t, pp.uac, 2*time.Second)
				if statusCode(final) != 200 || !strings.HasPrefix(header(final, "CSeq")[0], "1 INVITE") {
					t.Fatalf("UAC got %s (provisionals %v), want the callee's 200", startLine(final), prov)
				}
				for deadline := time.Now().Add(700 * time.Millisecond); time.Now().Before(deadline); {
					b, err := pp.uac.TryRecv(time.Until(deadline))
					if err != nil {
						break
					}
					if c := statusCode(b); c >= 300 {
						t.Fatalf("UAC got %s after the 200", startLine(b))
					}
				}
			case 2:
				c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second)
				if h := header(c, "Via"); len(h) != 1 || h[0] != header(inv, "Via")[0] {
					t.Fatalf("CANCEL Via %v, want the INVITE's top Via", h)
				}
				pp.uas[0].Send(replyTo(string(c), "200 OK", "callee"))
				pp.uas[0].Send(replyTo(string(inv), "487 Request Terminated", "callee"))
				final, _ := recvFinal(t, pp.uac, 2*time.Second)
				if statusCode(final) != 487 || !strings.Contains(string(final), "tag=callee") {
					t.Fatalf("UAC got %s, want the callee's 487", final)
				}
			}
		})
	}
}

// TestCancelBMethod1Timeout: a branch cancelled before it answered and that never answers times out; the
// caller gets 487 (Kamailio turns the local reply of a cancelled transaction into 487), not 408.
func TestCancelBMethod1Timeout(t *testing.T) {
	cfg := strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\nfr_timer = 1500\n", 1)
	pp := startPeers(t, cfg, 1, cancelScript)
	invite := pp.uac.Request("INVITE", pp.uasURI(0))
	pp.uac.Send(invite)
	recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	sendCancel(t, pp, invite)
	final, _ := recvFinal(t, pp.uac, 4*time.Second)
	if statusCode(final) != 487 {
		t.Fatalf("UAC got %s, want 487", startLine(final))
	}
}

// TestLowestCodeWins checks which failure of a parallel fork goes up (Kamailio's get_prio): the lowest
// code of the class whatever the order of arrival, 401/407 before other 4xx, 6xx before all but 2xx.
func TestLowestCodeWins(t *testing.T) {
	for _, tc := range []struct {
		answers []string // in the order they are sent: UAS 0 first
		want    int
	}{
		{[]string{"486 Busy Here", "480 Temporarily Unavailable"}, 480},
		{[]string{"480 Temporarily Unavailable", "486 Busy Here"}, 480},
		{[]string{"404 Not Found", "407 Proxy Authentication Required"}, 407},
		{[]string{"503 Service Unavailable", "486 Busy Here"}, 486},
		{[]string{"302 Moved Temporarily", "404 Not Found"}, 302},
		{[]string{"486 Busy Here", "603 Decline"}, 603},
		{[]string{"504 Server Time-out", "502 Bad Gateway"}, 502},
	} {
		t.Run(strings.Join(tc.answers, ","), func(t *testing.T) {
			pp := startPeers(t, peerConfig, 2, cancelScript)
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			reqs := [][]byte{recvRequest(t, pp.uas[0], "INVITE", 2*time.Second), recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)}
			for i, st := range tc.answers {
				answer(t, pp.uas[i], reqs[i], st)
			}
			final, _ := recvFinal(t, pp.uac, 2*time.Second)
			if statusCode(final) != tc.want {
				t.Fatalf("UAC got %s, want %d", startLine(final), tc.want)
			}
		})
	}
}

// TestHopRequestMaxForwards: the CANCEL and the ACK the proxy builds for a branch carry the Max-Forwards of
// the INVITE it relayed (Kamailio with reparse_invite), not a fresh 70.
func TestHopRequestMaxForwards(t *testing.T) {
	pp := startPeers(t, peerConfig, 2, cancelScript)
	invite := strings.Replace(pp.uac.Request("INVITE", pp.uasURI(0)), "Max-Forwards: 70", "Max-Forwards: 12", 1)
	pp.uac.Send(invite)
	inv0 := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	inv1 := recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)
	if h := header(inv0, "Max-Forwards"); len(h) != 1 || h[0] != "12" {
		t.Fatalf("relayed INVITE Max-Forwards %v, want 12", h)
	}
	pp.uas[0].Send(replyTo(string(inv0), "180 Ringing", "uas0"))
	pp.uas[1].Send(replyTo(string(inv1), "486 Busy Here", "uas1"))
	a := recvRequest(t, pp.uas[1], "ACK", 2*time.Second)
	if h := header(a, "Max-Forwards"); len(h) != 1 || h[0] != "12" {
		t.Errorf("ACK Max-Forwards %v, want 12", h)
	}
	sendCancel(t, pp, invite)
	c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second)
	if h := header(c, "Max-Forwards"); len(h) != 1 || h[0] != "12" {
		t.Errorf("CANCEL Max-Forwards %v, want 12", h)
	}
}

// TestReplyCodeOutsideReply: $T_reply_code is 0 in a request route, as in Kamailio (not null).
func TestReplyCodeOutsideReply(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	got := p.UDPClient(t).Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.pv.get("$T_reply_code")`)
	if got[0] != "number:0" {
		t.Fatalf("$T_reply_code = %s, want number:0", got[0])
	}
}

// TestRelayUnparsableRURI: a Request-URI set to text that does not parse ($ru, seturi take it unparsed, as
// in Kamailio) is not relayed, even with $du set: t_relay returns -1 and nothing reaches the next hop.
func TestRelayUnparsableRURI(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
		return fmt.Sprintf(`
function ksr_request_route()
	KSR.pv.sets("$ru", "not a uri")
	KSR.pv.sets("$du", %q)
	KSR.sl.sl_send_reply(500, "t_relay " .. KSR.tm.t_relay())
end
`, pp.uasURI(0))
	})
	pp.uac.Send(pp.uac.Request("MESSAGE", pp.uasURI(0)))
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if got := startLine(final); got != "SIP/2.0 500 t_relay -1" {
		t.Fatalf("UAC got %q, want 500 t_relay -1", got)
	}
	expectSilence(t, pp.uas[0], 300*time.Millisecond)
}

// TestLowerCaseInvite: "invite" is an INVITE transaction, as Kamailio's parser reads the method id: 100
// Trying, the callee's 486 ACKed by the proxy.
func TestLowerCaseInvite(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, cancelScript)
	r := pp.uac.Request("INVITE", pp.uasURI(0))
	r = strings.Replace(strings.Replace(r, "INVITE sip:", "invite sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 invite", 1)
	pp.uac.Send(r)
	inv := recvRequest(t, pp.uas[0], "invite", 2*time.Second)
	if b, err := pp.uac.TryRecv(time.Second); err != nil || statusCode(b) != 100 {
		t.Fatalf("UAC: want 100 Trying, got %q, %v", b, err)
	}
	pp.uas[0].Send(replyTo(string(inv), "486 Busy Here", "callee"))
	if a := recvRequest(t, pp.uas[0], "ACK", 2*time.Second); !strings.HasPrefix(header(a, "CSeq")[0], "1 ACK") {
		t.Fatalf("ACK CSeq %v", header(a, "CSeq"))
	}
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 486 {
		t.Fatalf("UAC got %s", startLine(final))
	}
}

// TestFailureRouteAfterFork: after a parallel fork, a failure route starts without the request route's
// appended branches (Kamailio consumes them with t_relay): its t_relay sends only to its new R-URI, and
// $T_branch_idx is the index of the next branch; t_branch_replied is 1 only when the picked branch had a
// reply before the one that completed the transaction (Kamailio's FL_REPLIED).
func TestFailureRouteAfterFork(t *testing.T) {
	pp := startPeers(t, peerConfig, 3, func(pp *peers) string {
		return fmt.Sprintf(`
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.corex.append_branch_uri(%q)
	KSR.tm.t_on_failure("f1")
	KSR.tm.t_relay()
end
function f1()
	KSR.hdr.append("X-F: bi=" .. KSR.pv.get("$T_branch_idx") .. " br=" .. KSR.tm.t_branch_replied() .. "\r\n")
	KSR.seturi(%q)
	KSR.tm.t_relay()
end
`, pp.uasURI(1), pp.uasURI(2))
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	inv0 := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	inv1 := recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)
	pp.uas[0].Send(replyTo(string(inv0), "180 Ringing", "uas0"))
	answer(t, pp.uas[0], inv0, "480 Temporarily Unavailable") // picked (lower code), had a 180 first
	answer(t, pp.uas[1], inv1, "486 Busy Here")
	inv2 := recvRequest(t, pp.uas[2], "INVITE", 2*time.Second)
	if h := header(inv2, "X-F"); len(h) != 1 || h[0] != "bi=2 br=1" {
		t.Errorf("failure route saw %v, want [bi=2 br=1]", h)
	}
	expectSilence(t, pp.uas[1], 300*time.Millisecond) // not forked to again
	answer(t, pp.uas[2], inv2, "404 Not Found")
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 404 {
		t.Fatalf("UAC got %s, want 404", startLine(final))
	}
}
