package tm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestNewtranReleased: a transaction created with t_newtran that the script neither relays nor answers is
// released at the end of the route (Kamailio's t_unref): retransmissions are absorbed for wt_timer, then the
// request is routed afresh.
func TestNewtranReleased(t *testing.T) {
	p := enginetest.Start(t, "[core]\nworkers = 1\n[modules.tm]\nwt_timer = 100\n[modules.sl]\n", `
n = 0
function ksr_request_route()
	if KSR.tm.t_newtran() == 0 then return end
	n = n + 1
	if n == 1 then return end -- neither relayed nor answered
	KSR.sl.sl_send_reply(200, "routed again " .. n)
end`)
	c := p.UDPClient(t)
	req := c.Request("MESSAGE", "sip:bob@127.0.0.1")
	c.Send(req)
	if b, err := c.TryRecv(50 * time.Millisecond); err == nil {
		t.Fatalf("unexpected reply: %q", b)
	}
	c.Send(req) // within wt_timer: absorbed
	if b, err := c.TryRecv(20 * time.Millisecond); err == nil {
		t.Fatalf("retransmission got a reply: %q", b)
	}
	time.Sleep(300 * time.Millisecond)
	c.Send(req)
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 || r.Reason != "routed again 2" {
		t.Fatalf("after the release: %d %s, want 200 routed again 2", r.StatusCode, r.Reason)
	}
	if !strings.Contains(p.Log.String(), "neither relayed nor answered it: released") {
		t.Errorf("no warning about the released transaction")
	}
}

// TestNonInviteRetransmission: a retransmitted non-INVITE gets the last reply sent upstream again and is
// not relayed a second time.
func TestNonInviteRetransmission(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.tm.t_check_trans() == 0 then return end
	KSR.tm.t_relay()
end`
	})
	req := pp.uac.Request("MESSAGE", pp.uasURI(0))
	pp.uac.Send(req)
	got := recvRequest(t, pp.uas[0], "MESSAGE", 2*time.Second)
	pp.uas[0].Send(replyTo(string(got), "202 Accepted", "u1"))
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 202 {
		t.Fatalf("UAC got %q", startLine(final))
	}
	for range 2 {
		pp.uac.Send(req)
		if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 202 || header(final, "To")[0] == "" {
			t.Fatalf("retransmission got %q", startLine(final))
		}
	}
	expectSilence(t, pp.uas[0], 200*time.Millisecond)
}

// TestTimersWhateverTheNextHop: the caller gets a final answer within the timers whatever the next hop
// does: silent (fr_timer), ringing forever (max_inv_lifetime caps fr_inv_timer), provisional after
// provisional on a non-INVITE (fr_timer still applies).
func TestTimersWhateverTheNextHop(t *testing.T) {
	const slack = 500 * time.Millisecond
	for _, tc := range []struct {
		name, method string
		prov         string // a provisional the next hop sends every 100 ms ("" = silent)
		after        time.Duration
	}{
		{"silent INVITE", "INVITE", "", 300 * time.Millisecond},
		{"silent MESSAGE", "MESSAGE", "", 300 * time.Millisecond},
		{"ringing forever", "INVITE", "180 Ringing", 800 * time.Millisecond},
		{"trying forever", "MESSAGE", "100 Trying", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(peerConfig, "[modules.tm]\n",
				"[modules.tm]\nfr_timer = 300\nfr_inv_timer = 400\nmax_inv_lifetime = 800\nmax_noninv_lifetime = 2000\n", 1)
			pp := startPeers(t, cfg, 1, func(pp *peers) string {
				return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_relay()
end`
			})
			start := time.Now()
			pp.uac.Send(pp.uac.Request(tc.method, pp.uasURI(0)))
			req := recvRequest(t, pp.uas[0], tc.method, 2*time.Second)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the next hop's provisionals, until the caller has its answer
				defer close(done)
				if tc.prov == "" {
					return
				}
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					pp.uas[0].Send(replyTo(string(req), tc.prov, "u1"))
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			final, _ := recvFinal(t, pp.uac, tc.after+3*time.Second)
			took := time.Since(start)
			close(stop)
			<-done
			if got := strings.TrimPrefix(startLine(final), "SIP/2.0 "); got != "408 Request Timeout" {
				t.Fatalf("UAC got %q, want 408", got)
			}
			if took < tc.after-50*time.Millisecond || took > tc.after+slack {
				t.Errorf("408 after %v, want %v (+%v slack)", took, tc.after, slack)
			}
		})
	}
}

// TestRouteTimeoutInTransactionRoutes: an endless onreply or failure route is cancelled after
// lua.route_timeout; the transaction goes on (the reply is relayed, the best reply sent upstream) and the
// worker serves the next call.
func TestRouteTimeoutInTransactionRoutes(t *testing.T) {
	for _, tc := range []struct {
		name, arm string
	}{
		{"onreply", `KSR.tm.t_on_reply("spin")`},
		{"failure", `KSR.tm.t_on_failure("spin")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "workers = 1\n[lua]\nscript = \"script.lua\"\nroute_timeout = 50\n" + peerConfig
			pp := startPeers(t, cfg, 1, func(pp *peers) string {
				return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	` + tc.arm + `
	KSR.tm.t_relay()
end
function spin() while true do end end`
			})
			for i := range 2 {
				start := time.Now()
				inv := enginetest.CRLF(pp.uac.Request("INVITE", pp.uasURI(0)))
				pp.uac.Send(inv)
				answer(t, pp.uas[0], recvRequest(t, pp.uas[0], "INVITE", 2*time.Second), "486 Busy Here")
				final, _ := recvFinal(t, pp.uac, 3*time.Second)
				if statusCode(final) != 486 {
					t.Fatalf("call %d: UAC got %q, want the 486", i, startLine(final))
				}
				if d := time.Since(start); d > 1500*time.Millisecond {
					t.Errorf("call %d: final reply after %v", i, d)
				}
				pp.uac.Send(ackFor(inv, final))
			}
			// counted when the worker is done with the message, just after the reply left
			for deadline := time.Now().Add(2 * time.Second); pp.p.E.Stats().RouteTimeouts() < 2 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if n := pp.p.E.Stats().RouteTimeouts(); n < 2 {
				t.Errorf("route_timeouts = %d, want at least 2", n)
			}
		})
	}
}

// TestRelayFailureAnswers: when no branch can go out, the caller gets 477 (send error) or 478 (bad
// destination) through the transaction at the end of the route, as Kamailio's delayed kill_transaction
// does, unless the script answered itself; a retransmission gets the same answer.
func TestRelayFailureAnswers(t *testing.T) {
	for _, tc := range []struct{ name, uri, onFail, want string }{
		{"no socket for the destination", "sip:bob@[::1]:5999", "", "477 Unfortunately error on sending to next hop occurred (477/TM)"},
		{"bad destination", "sip:bob@127.0.0.1:5999;transport=sctp", "", "478 Unresolvable destination (478/TM)"},
		{"script answers statelessly", "sip:bob@[::1]:5999", `KSR.sl.sl_send_reply(503, "script")`, "503 script"},
		{"script answers with t_reply", "sip:bob@[::1]:5999", `KSR.tm.t_reply(503, "script")`, "503 script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := enginetest.Start(t, "[modules.tm]\n[modules.sl]\n", `
function ksr_request_route()
	if KSR.tm.t_check_trans() == 0 then return end
	KSR.seturi("`+tc.uri+`")
	if KSR.tm.t_relay() < 0 then `+tc.onFail+` end
end`)
			c := p.UDPClient(t)
			req := c.Request("MESSAGE", "sip:bob@127.0.0.1")
			for i := range 2 {
				if i > 0 {
					// a client retransmits after T1 (500 ms): by then the first route has ended. Sent at once,
					// the retransmission could meet the transaction before the end of that route, which
					// absorbs it (as Kamailio's does) and the test would wait for nothing.
					time.Sleep(300 * time.Millisecond)
				}
				c.Send(req)
				final, _ := recvFinal(t, c, 2*time.Second)
				if got := strings.TrimPrefix(startLine(final), "SIP/2.0 "); got != tc.want {
					t.Fatalf("send %d: got %q, want %q", i, got, tc.want)
				}
			}
			if b, err := c.TryRecv(200 * time.Millisecond); err == nil {
				t.Fatalf("a second answer: %q", startLine(b))
			}
		})
	}
}
