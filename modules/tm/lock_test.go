package tm_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/tm"
)

// sendWatch counts the sends tm makes for transactions and those made holding the transaction's lock.
type sendWatch struct{ sends, held atomic.Int64 }

func watchSends(t *testing.T, p *enginetest.Proxy) *sendWatch {
	t.Helper()
	inst, ok := p.E.Module("tm")
	if !ok {
		t.Fatal("tm is not loaded")
	}
	w := &sendWatch{}
	tm.WatchSends(inst.(*tm.TM), func(held bool) {
		w.sends.Add(1)
		if held {
			w.held.Add(1)
		}
	})
	return w
}

// lockConfig makes the RFC 3261 timers short so that retransmissions and timeouts come within the test.
const lockConfig = "[modules.tm]\nretr_timer1 = 40\nretr_timer2 = 160\nfr_timer = 600\nfr_inv_timer = 600\n" +
	"[modules.rr]\n[modules.sl]\n[modules.corex]\n[modules.tmx]\n"

// lockScript relays to the R-URI; with NEXT set a failure route relays there, with FORK set a second
// branch goes there; MESSAGE gets a local reply through its transaction.
func lockScript(next, fork string) string {
	return fmt.Sprintf(`
NEXT, FORK = %q, %q
function ksr_request_route()
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_method("MESSAGE") then
		if KSR.tm.t_check_trans() == 0 then return 1 end -- a retransmission: the last reply again
		KSR.tm.t_reply(202, "Accepted here")
		return 1
	end
	if NEXT ~= "" then KSR.tm.t_on_failure("next") end
	if FORK ~= "" then KSR.corex.append_branch_uri(FORK) end
	KSR.tm.t_relay()
end
function next()
	if KSR.tm.t_is_canceled() > 0 then return end
	KSR.seturi(NEXT)
	KSR.tm.t_relay()
end
`, next, fork)
}

// recvStatus reads replies at the UAC until one with the code (provisionals and retransmissions before it
// are skipped).
func recvStatus(t *testing.T, c *enginetest.Client, code int, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("%d expected at %s: %v", code, c.Addr, err)
		}
		if statusCode(b) == code {
			return b
		}
		t.Logf("%s skipped while waiting for %d: %s", c.Addr, code, startLine(b))
	}
}

func cancelOf(invite string) string {
	c := strings.Replace(invite, "INVITE ", "CANCEL ", 1)
	return strings.Replace(c, "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
}

// TestNoSendUnderLock runs the transaction flows that send from every place tm sends (the first request of
// a branch, its retransmissions, CANCEL and its retransmissions, ACK, 100 Trying, relayed provisional and
// final replies, a forked second 2xx, 2xx retransmissions, local replies and their timer G
// retransmissions, replies to retransmitted requests, failure routes, timeouts) and fails when any send is
// made while the sending goroutine holds the transaction's lock (DESIGN: never send while holding a
// transaction's lock). Each flow is checked on the wire too.
func TestNoSendUnderLock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers int
		next  bool // a failure route relays to UAS 1
		fork  bool // a second branch goes to UAS 1
		run   func(t *testing.T, pp *peers)
	}{
		{"INVITE retransmitted until the timeout, 408 until the ACK", 1, false, false, func(t *testing.T, pp *peers) {
			inv := pp.uac.Request("INVITE", pp.uasURI(0))
			pp.uac.Send(inv)
			first := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			for i := range 2 { // timer A retransmissions: the same bytes
				if b := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second); string(b) != string(first) {
					t.Fatalf("retransmission %d differs:\n%s\nfirst:\n%s", i+1, b, first)
				}
			}
			recvStatus(t, pp.uac, 100, time.Second)
			final := recvStatus(t, pp.uac, 408, 3*time.Second)
			recvStatus(t, pp.uac, 408, time.Second) // timer G: the 408 again until the ACK
			pp.uac.Send(ackFor(inv, final))
			time.Sleep(100 * time.Millisecond) // retransmissions in flight when the ACK came
			for {
				if _, err := pp.uac.TryRecv(200 * time.Millisecond); err != nil {
					break
				}
			}
			pp.uac.Send(inv) // a retransmitted INVITE gets the last reply again
			recvStatus(t, pp.uac, 408, time.Second)
		}},
		{"ringing then fr_inv_timer: CANCEL, 487 ACKed", 1, false, false, func(t *testing.T, pp *peers) {
			inv := pp.uac.Request("INVITE", pp.uasURI(0))
			pp.uac.Send(inv)
			req := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			pp.uas[0].Send(replyTo(string(req), "180 Ringing", "r1"))
			recvStatus(t, pp.uac, 180, time.Second)
			c := recvRequest(t, pp.uas[0], "CANCEL", 3*time.Second)
			pp.uas[0].Send(replyTo(string(c), "200 OK", "r1"))
			final := recvStatus(t, pp.uac, 408, 2*time.Second)
			pp.uas[0].Send(replyTo(string(req), "487 Request Terminated", "r1"))
			recvRequest(t, pp.uas[0], "ACK", 2*time.Second)
			pp.uac.Send(ackFor(inv, final))
		}},
		{"caller CANCEL: 200, CANCEL downstream and retransmitted, 487 relayed", 1, false, false, func(t *testing.T, pp *peers) {
			inv := pp.uac.Request("INVITE", pp.uasURI(0))
			pp.uac.Send(inv)
			req := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			pp.uas[0].Send(replyTo(string(req), "180 Ringing", "r1"))
			recvStatus(t, pp.uac, 180, time.Second)
			pp.uac.Send(cancelOf(inv))
			recvStatus(t, pp.uac, 200, time.Second) // to the CANCEL
			c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second)
			recvRequest(t, pp.uas[0], "CANCEL", time.Second) // retransmitted while unanswered
			pp.uas[0].Send(replyTo(string(c), "200 OK", "r1"))
			pp.uas[0].Send(replyTo(string(req), "487 Request Terminated", "r1"))
			recvRequest(t, pp.uas[0], "ACK", 2*time.Second)
			final := recvStatus(t, pp.uac, 487, 2*time.Second)
			pp.uac.Send(ackFor(inv, final))
		}},
		{"200 relayed, retransmitted by the callee and for a retransmitted INVITE", 1, false, false, func(t *testing.T, pp *peers) {
			inv := pp.uac.Request("INVITE", pp.uasURI(0))
			pp.uac.Send(inv)
			req := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			pp.uas[0].Send(replyTo(string(req), "180 Ringing", "r1"))
			recvStatus(t, pp.uac, 180, time.Second) // (workers route replies in parallel: one at a time)
			pp.uas[0].Send(replyTo(string(req), "200 OK", "r1"))
			recvStatus(t, pp.uac, 200, time.Second)
			pp.uas[0].Send(replyTo(string(req), "200 OK", "r1"))
			recvStatus(t, pp.uac, 200, time.Second)
			pp.uac.Send(inv)
			recvStatus(t, pp.uac, 200, time.Second)
		}},
		{"forked INVITE: both 2xx relayed", 2, false, true, func(t *testing.T, pp *peers) {
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			a := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			b := recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)
			pp.uas[0].Send(replyTo(string(a), "200 OK", "a"))
			recvStatus(t, pp.uac, 200, time.Second)
			pp.uas[1].Send(replyTo(string(b), "200 OK", "b"))
			if got := header(recvStatus(t, pp.uac, 200, time.Second), "To"); len(got) != 1 || !strings.HasSuffix(got[0], "tag=b") {
				t.Fatalf("second 2xx To %v", got)
			}
		}},
		{"failure route: serial forking after 486", 2, true, false, func(t *testing.T, pp *peers) {
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			answer(t, pp.uas[0], recvRequest(t, pp.uas[0], "INVITE", 2*time.Second), "486 Busy Here")
			answer(t, pp.uas[1], recvRequest(t, pp.uas[1], "INVITE", 2*time.Second), "404 Not Found")
			if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 404 {
				t.Fatalf("UAC got %s, want 404", startLine(final))
			}
		}},
		{"failure route after a timeout", 2, true, false, func(t *testing.T, pp *peers) {
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			recvRequest(t, pp.uas[0], "INVITE", 2*time.Second) // never answered
			answer(t, pp.uas[1], recvRequest(t, pp.uas[1], "INVITE", 3*time.Second), "200 OK")
			if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 200 {
				t.Fatalf("UAC got %s, want 200", startLine(final))
			}
		}},
		{"non-INVITE: retransmitted, answered, local reply again for a retransmission", 1, false, false, func(t *testing.T, pp *peers) {
			opt := pp.uac.Request("OPTIONS", pp.uasURI(0))
			pp.uac.Send(opt)
			req := recvRequest(t, pp.uas[0], "OPTIONS", 2*time.Second)
			recvRequest(t, pp.uas[0], "OPTIONS", time.Second) // timer E
			pp.uas[0].Send(replyTo(string(req), "200 OK", "o"))
			recvStatus(t, pp.uac, 200, time.Second)
			msg := pp.uac.Request("MESSAGE", pp.uasURI(0))
			pp.uac.Send(msg)
			recvStatus(t, pp.uac, 202, time.Second)
			pp.uac.Send(msg)
			recvStatus(t, pp.uac, 202, time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := startPeers(t, lockConfig, tc.peers, func(pp *peers) string {
				var next, fork string
				if tc.next {
					next = pp.uasURI(1)
				}
				if tc.fork {
					fork = pp.uasURI(1)
				}
				return lockScript(next, fork)
			})
			w := watchSends(t, pp.p)
			tc.run(t, pp)
			if n := w.held.Load(); n > 0 {
				t.Errorf("%d of %d sends made holding the transaction's lock", n, w.sends.Load())
			}
			if w.sends.Load() == 0 {
				t.Error("no send went through the hook")
			}
		})
	}
}

// TestNoSendUnderLockFailover: RFC 3263 failover (after a 503, and after a server that never answered)
// sends the next branch without the transaction's lock too.
func TestNoSendUnderLockFailover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(string) int
	}{
		{"after a 503", func(string) int { return 503 }},
		{"after no answer", func(string) int { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := enginetest.StartUAS(t, false, tc.first)
			second := enginetest.StartUAS(t, false, nil)
			dns := enginetest.StartDNS(t)
			dns.Add(t, "a.test. 60 IN A 127.0.0.1",
				fmt.Sprintf("_sip._udp.fo.test. 60 IN SRV 10 0 %d a.test.", first.Addr.Port()),
				fmt.Sprintf("_sip._udp.fo.test. 60 IN SRV 20 0 %d a.test.", second.Addr.Port()))
			p := enginetest.Start(t, ioConfig(dns, ""), ioRelayScript)
			w := watchSends(t, p)
			uac := p.UDPClient(t)
			uac.Send(uac.Request("INVITE", "sip:bob@fo.test;transport=udp"))
			if got := finalReply(t, uac, 5*time.Second); got != "SIP/2.0 200 OK" {
				t.Fatalf("final reply %q, want 200", got)
			}
			if r := second.Next(t, time.Second); !strings.HasPrefix(r.Raw, "INVITE ") {
				t.Errorf("second server got %.40q", r.Raw)
			}
			if n := w.held.Load(); n > 0 {
				t.Errorf("%d of %d sends made holding the transaction's lock", n, w.sends.Load())
			}
			if w.sends.Load() < 3 { // 100, the two branches, the 200
				t.Errorf("%d sends went through the hook, want at least 3", w.sends.Load())
			}
		})
	}
}
