package tm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBranchRoute: the branch route runs once per branch before it is sent; what it changes (R-URI user,
// Record-Route) goes out on that branch only, and a branch it drops is never sent.
func TestBranchRoute(t *testing.T) {
	pp := startPeers(t, peerConfig, 3, func(pp *peers) string {
		return fmt.Sprintf(`
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.setbflag(2); KSR.corex.append_branch_uri(%q); KSR.resetbflag(2)
	KSR.setbflag(1); KSR.corex.append_branch_uri(%q); KSR.resetbflag(1)
	KSR.tm.t_on_branch("branch")
	KSR.tm.t_relay()
end
function branch()
	KSR.info("branch route: is_branch_route=" .. KSR.tmx.t_is_branch_route())
	if KSR.isbflagset(1) then KSR.drop() return end
	if KSR.isbflagset(2) then KSR.setuser("changed"); KSR.rr.record_route() end
end
`, pp.uasURI(1), pp.uasURI(2))
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	a := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	b := recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)
	if got, want := startLine(a), "INVITE "+pp.uasURI(0)+" SIP/2.0"; got != want {
		t.Errorf("branch 0: %q, want %q", got, want)
	}
	if rr := header(a, "Record-Route"); len(rr) != 0 {
		t.Errorf("branch 0 got the Record-Route of branch 1: %v", rr)
	}
	if got, want := startLine(b), "INVITE sip:changed@"+pp.uas[1].Addr.String()+" SIP/2.0"; got != want {
		t.Errorf("branch 1: %q, want %q", got, want)
	}
	if rr := header(b, "Record-Route"); len(rr) != 1 || !strings.Contains(rr[0], pp.p.UDP.String()) {
		t.Errorf("branch 1 Record-Route: %v", rr)
	}
	expectSilence(t, pp.uas[2], 300*time.Millisecond)
	if n := strings.Count(pp.p.Log.String(), "is_branch_route=1"); n != 3 {
		t.Errorf("branch route ran %d times, want 3 (one per branch, the dropped one included)", n)
	}

	answer(t, pp.uas[0], a, "486 Busy Here")
	answer(t, pp.uas[1], b, "486 Busy Here")
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 486 {
		t.Fatalf("UAC got %s, want 486", startLine(final))
	}
}

// TestOnReplyRoute: the onreply route sees every reply of its transaction and may drop a provisional one.
func TestOnReplyRoute(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_on_reply("onreply")
	KSR.tm.t_relay()
end
function onreply()
	KSR.info("onreply code=" .. KSR.tm.t_get_status_code() .. " reply_route=" .. KSR.tmx.t_is_reply_route())
	if KSR.tm.t_check_status("183") > 0 then KSR.drop() end
end
`
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	for _, st := range []string{"180 Ringing", "183 Session Progress"} {
		pp.uas[0].Send(replyTo(string(inv), st, "u1"))
		// keep the order (replies are routed by several workers): the next goes once this one was routed
		pp.p.Log.WaitCount(t, "onreply code="+st[:3], 1, 2*time.Second)
	}
	pp.uas[0].Send(replyTo(string(inv), "200 OK", "u1"))
	final, prov := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 200 {
		t.Fatalf("UAC got %s, want 200", startLine(final))
	}
	if want := []int{100, 180}; !slices.Equal(prov, want) {
		t.Errorf("UAC provisionals %v, want %v (the 183 dropped)", prov, want)
	}
	log := pp.p.Log.String()
	for _, code := range []string{"180", "183", "200"} {
		if !strings.Contains(log, "onreply code="+code+" reply_route=1") {
			t.Errorf("onreply route did not see the %s", code)
		}
	}
}

// TestSerialForkingByQ: t_load_contacts orders the destinations by q, t_next_contacts takes one group at a
// time; each negative answer runs the failure route, which tries the next one.
func TestSerialForkingByQ(t *testing.T) {
	pp := startPeers(t, peerConfig, 3, func(pp *peers) string {
		return fmt.Sprintf(`
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.corex.append_branch_uri_q(%q, "0.1")
	KSR.corex.append_branch_uri_q(%q, "0.5")
	KSR.tm.t_load_contacts()
	KSR.tm.t_next_contacts()
	KSR.tm.t_on_failure("next")
	KSR.tm.t_relay()
end
function next()
	if KSR.tm.t_is_canceled() > 0 then return end
	if KSR.tm.t_next_contacts() > 0 then
		KSR.tm.t_on_failure("next")
		KSR.tm.t_relay()
	end
end
`, pp.uasURI(2), pp.uasURI(1))
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	// R-URI (no q = 1.0) first, then q=0.5, then q=0.1
	for i, st := range []string{"486 Busy Here", "480 Temporarily Unavailable", "200 OK"} {
		inv := recvRequest(t, pp.uas[i], "INVITE", 2*time.Second)
		if got, want := startLine(inv), "INVITE "+pp.uasURI(i)+" SIP/2.0"; got != want {
			t.Fatalf("step %d: %q, want %q", i, got, want)
		}
		for _, later := range pp.uas[i+1:] {
			expectSilence(t, later, 150*time.Millisecond)
		}
		answer(t, pp.uas[i], inv, st)
	}
	final, prov := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 200 || !slices.Equal(prov, []int{100}) {
		t.Fatalf("UAC got %v then %s, want 100 then 200", prov, startLine(final))
	}
}
