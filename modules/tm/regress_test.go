package tm_test

import (
	"strings"
	"testing"
	"time"
)

// A branch route runs inside t_relay; the request route goes on with its own message afterwards (the
// nested route must not leave the state without one), and the caller gets no stray 500.
func TestRouteAfterBranchRoute(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_on_branch("branch")
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
	KSR.info("after relay: " .. KSR.kx.get_method())
end
function branch() KSR.info("in branch: " .. KSR.kx.get_method()) end
`
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	answer(t, pp.uas[0], inv, "486 Busy Here")
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 486 {
		t.Fatalf("UAC got %s, want 486 (a 500 means the route failed after t_relay)", startLine(final))
	}
	// the 486 can reach the caller before the route, still running on its worker, logs
	pp.p.Log.WaitCount(t, "after relay: INVITE", 1, 2*time.Second)
}

// A script error after the request was answered through its transaction sends no second final reply.
func TestErrorAfterTReply(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
		return `
function ksr_request_route()
	KSR.tm.t_reply(404, "Not Here")
	local x = nil
	return x.boom
end
`
	})
	pp.uac.Send(pp.uac.Request("OPTIONS", pp.uasURI(0)))
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 404 {
		t.Fatalf("UAC got %s, want 404", startLine(final))
	}
	expectSilence(t, pp.uac, 300*time.Millisecond)
}

// CANCEL before the callee rang, cancel_b_method 0: the caller gets 200 and 487 at once, and when the
// callee's 180 comes later the proxy cancels that branch (RFC 3261 §9.1) instead of letting it ring.
func TestCancelBeforeProvisional(t *testing.T) {
	cfg := strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\ncancel_b_method = 0\n", 1)
	pp := startPeers(t, cfg, 1, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_relay()
end
`
	})
	invite := pp.uac.Request("INVITE", pp.uasURI(0))
	pp.uac.Send(invite)
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	if b, err := pp.uac.TryRecv(time.Second); err != nil || statusCode(b) != 100 {
		t.Fatalf("UAC: want 100 Trying, got %q, %v", b, err)
	}
	cancel := strings.Replace(invite, "INVITE ", "CANCEL ", 1)
	cancel = strings.Replace(cancel, "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	pp.uac.Send(cancel)
	got := map[string]bool{}
	for range 2 {
		b, err := pp.uac.TryRecv(2 * time.Second)
		if err != nil {
			t.Fatalf("UAC: want 200 (CANCEL) and 487 (INVITE), got %v: %v", got, err)
		}
		got[startLine(b)+" "+header(b, "CSeq")[0]] = true
	}
	if !got["SIP/2.0 200 canceling 1 CANCEL"] && !got["SIP/2.0 200 OK 1 CANCEL"] {
		t.Errorf("no 200 for the CANCEL: %v", got)
	}
	var saw487 bool
	for k := range got {
		saw487 = saw487 || strings.HasPrefix(k, "SIP/2.0 487 ")
	}
	if !saw487 {
		t.Errorf("no 487 for the INVITE: %v", got)
	}
	pp.uas[0].Send(replyTo(string(inv), "180 Ringing", "late"))
	c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second)
	if h := header(c, "CSeq"); len(h) != 1 || h[0] != "1 CANCEL" {
		t.Errorf("CANCEL CSeq %v", h)
	}
}
