package tm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// A completed transaction waits out wt_timer as a compact record (wait.go). These tests make sure it became
// one (the gauges), then check on the wire that the record still does what the live transaction did.

const waitScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_on_reply("onrep")
	KSR.tm.t_relay()
end
function onrep()
	KSR.hdr.append("X-OnReply: " .. KSR.pv.get("$rs") .. "\r\n")
end`

func tmGauge(t *testing.T, pp *peers, name string) float64 {
	t.Helper()
	for _, g := range pp.p.E.ModuleGauges() {
		if g.Name == name {
			return g.Value()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// waitForRecord waits until the proxy's only transaction is a record: none live, one waiting.
func waitForRecord(t *testing.T, pp *peers) {
	t.Helper()
	enginetest.Eventually(t, 3*time.Second, "the completed transaction kept as a record", func() bool {
		return tmGauge(t, pp, "tm_transactions_waiting") == 1 && tmGauge(t, pp, "tm_transactions") == 1 &&
			tmGauge(t, pp, "tm_branches") == 0
	})
}

// waitCall starts the proxy with wt_timer (ms) and waitScript, and makes a call its UAS answers with
// status: the caller's INVITE, the request the UAS got and the UAS's reply.
func waitCall(t *testing.T, wt, status string) (pp *peers, inv string, req []byte, reply string) {
	t.Helper()
	cfg := strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\nwt_timer = "+wt+"\n", 1) + "[modules.hdr]\n[modules.pv]\n"
	pp = startPeers(t, cfg, 1, func(*peers) string { return waitScript })
	inv = enginetest.CRLF(pp.uac.Request("INVITE", pp.uasURI(0)))
	pp.uac.Send(inv)
	req = recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	reply = replyTo(string(req), status, "uas1")
	pp.uas[0].Send(reply)
	return pp, inv, req, reply
}

// TestWaitRecord2xx: after a 2xx, the record answers the INVITE retransmitted with the 2xx again, relays
// the 2xx the callee sends again (its onreply route still runs), answers a late CANCEL with 200; once
// wt_timer is over it is gone and the same INVITE is a new request.
func TestWaitRecord2xx(t *testing.T) {
	pp, inv, _, ok := waitCall(t, "1500", "200 OK")
	first, _ := recvFinal(t, pp.uac, 2*time.Second)
	if got := header(first, "X-OnReply"); len(got) != 1 || got[0] != "200" {
		t.Fatalf("first 200: X-OnReply %v, want [200]:\n%s", got, first)
	}
	waitForRecord(t, pp)
	cancelCallID := pp.p.Export(t, "tmx", "t_cancel_callid").(func(*engine.Msg, string, string, int) int)
	m := &engine.Msg{E: pp.p.E}
	if rc := cancelCallID(m, header([]byte(inv), "Call-ID")[0], "1", 0); rc != 1 {
		t.Fatalf("t_cancel_callid of the completed call: %d, want 1 (found, nothing to cancel)", rc)
	}
	if rc := cancelCallID(m, "another-call", "1", 0); rc != -1 {
		t.Fatalf("t_cancel_callid of an unknown call: %d, want -1", rc)
	}

	pp.uac.Send(inv) // the caller did not get the 200: it goes again, from the record
	again, _ := recvFinal(t, pp.uac, 2*time.Second)
	if string(again) != string(first) {
		t.Fatalf("retransmitted INVITE answered with\n%s\nwant the first 200 again:\n%s", again, first)
	}
	expectSilence(t, pp.uas[0], 200*time.Millisecond)

	pp.uas[0].Send(ok) // the callee did not get the ACK: its 200 goes up again, through the onreply route
	relayed, _ := recvFinal(t, pp.uac, 2*time.Second)
	if got := header(relayed, "X-OnReply"); startLine(relayed) != "SIP/2.0 200 OK" || len(got) != 1 || got[0] != "200" {
		t.Fatalf("2xx sent again by the callee reached the caller as\n%s", relayed)
	}
	if got, want := header(relayed, "Via"), header(first, "Via"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("relayed 2xx Via %v, want %v", got, want)
	}

	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	pp.uac.Send(cancel)
	c, _ := recvFinal(t, pp.uac, 2*time.Second)
	if startLine(c) != "SIP/2.0 200 canceling" || header(c, "CSeq")[0] != "1 CANCEL" {
		t.Fatalf("late CANCEL answered with\n%s", c)
	}
	expectSilence(t, pp.uas[0], 200*time.Millisecond)

	enginetest.Eventually(t, 4*time.Second, "the record gone after wt_timer", func() bool {
		return tmGauge(t, pp, "tm_transactions") == 0
	})
	pp.uac.Send(inv)
	recvRequest(t, pp.uas[0], "INVITE", 2*time.Second) // a new transaction: relayed
}

// TestWaitRecordNegative: after a 486 the caller ACKed, the record ACKs the 486 the callee sends again
// (hop by hop, the same ACK as the first), relays nothing upstream, and absorbs the caller's ACK sent again.
func TestWaitRecordNegative(t *testing.T) {
	pp, inv, _, busy := waitCall(t, "3000", "486 Busy Here")
	ack1 := recvRequest(t, pp.uas[0], "ACK", 2*time.Second)
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 486 {
		t.Fatalf("caller got %s", startLine(final))
	}
	ack := ackFor(inv, final)
	pp.uac.Send(ack)
	waitForRecord(t, pp)

	pp.uas[0].Send(busy)
	ack2 := recvRequest(t, pp.uas[0], "ACK", 2*time.Second)
	if string(ack2) != string(ack1) {
		t.Fatalf("ACK of the 486 sent again:\n%s\nwant the first one:\n%s", ack2, ack1)
	}
	if got := header(ack2, "X-OnReply"); len(got) != 0 {
		t.Fatalf("the ACK carries the reply's header: %v", got)
	}
	expectSilence(t, pp.uac, 200*time.Millisecond)

	pp.uac.Send(ack)
	pp.uac.Send(inv) // and the INVITE once more: the 486 again, nothing downstream
	if again, _ := recvFinal(t, pp.uac, 2*time.Second); string(again) != string(final) {
		t.Fatalf("retransmitted INVITE answered with\n%s\nwant\n%s", again, final)
	}
	expectSilence(t, pp.uas[0], 200*time.Millisecond)
}
