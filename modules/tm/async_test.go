package tm_test

import (
	"strings"
	"testing"
	"time"
)

// asyncScript suspends every INVITE (keeping its ids in $shv) and continues it, on route "resume", when a
// MESSAGE comes; the resume route relays it. An INVITE with X-Short gets a 300 ms fr_timer first.
const asyncScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then
		if KSR.hdr.is_present("X-Short") > 0 then KSR.tm.t_set_fr(0, 300) end
		KSR.tm.t_on_failure("failed")
		if KSR.tmx.t_suspend() < 0 then KSR.sl.sl_send_reply(500, "not suspended") return 1 end
		KSR.pv.seti("$shv(idx)", KSR.pv.get("$T(id_index)"))
		KSR.pv.seti("$shv(lbl)", KSR.pv.get("$T(id_label)"))
		KSR.info("suspended request_route=" .. KSR.tmx.t_is_request_route())
		KSR.x.exit()
	end
	if KSR.is_MESSAGE() then
		local rc = KSR.tmx.t_continue(KSR.pv.get("$shv(idx)"), KSR.pv.get("$shv(lbl)"), "resume")
		KSR.sl.sl_send_reply(200, "continue " .. rc)
		return 1
	end
end
function resume(ev)
	KSR.info("resumed event=" .. ev .. " request_route=" .. KSR.tmx.t_is_request_route())
	KSR.hdr.append("X-Resumed: yes\r\n")
	KSR.tm.t_relay()
end
function failed()
	KSR.info("failure route code=" .. KSR.tm.t_get_status_code())
end
`

// TestSuspendContinue: a suspended INVITE gets 100 Trying and goes nowhere; a later request continues it by
// index and label, and the resume route relays it on a worker: the UAS gets it (with the resume route's
// header) and its 200 reaches the caller through the same transaction. The ids work once.
func TestSuspendContinue(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string { return asyncScript })
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
	r := pp.uac.RecvRaw(2 * time.Second)
	if statusCode(r) != 100 {
		t.Fatalf("suspended INVITE: got %q, want 100 Trying", startLine(r))
	}
	expectSilence(t, pp.uas[0], 300*time.Millisecond)
	expectSilence(t, pp.uac, 10*time.Millisecond)

	ctl := pp.p.UDPClient(t)
	ctl.Send(ctl.Request("MESSAGE", "sip:continue@127.0.0.1"))
	if got := startLine(ctl.RecvRaw(2 * time.Second)); got != "SIP/2.0 200 continue 1" {
		t.Fatalf("t_continue: %q, want \"SIP/2.0 200 continue 1\"", got)
	}
	inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	if h := header(inv, "X-Resumed"); len(h) != 1 {
		t.Errorf("the relayed INVITE lacks the resume route's header:\n%s", inv)
	}
	answer(t, pp.uas[0], inv, "200 OK")
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 200 {
		t.Fatalf("caller got %q, want 200 from the UAS", startLine(final))
	}
	log := pp.p.Log.String()
	for _, want := range []string{"suspended request_route=1", "resumed event=tmx:continue request_route=-1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	ctl.Send(ctl.Request("MESSAGE", "sip:continue@127.0.0.1"))
	if got := startLine(ctl.RecvRaw(2 * time.Second)); got != "SIP/2.0 200 continue -1" {
		t.Errorf("second t_continue with the same ids: %q, want -1", got)
	}
}

// TestSuspendTimeoutAndCancel: a suspended INVITE that nobody continues times out after its fr_timer with
// 408 (through the failure route, as Kamailio's blind branch), and a CANCEL ends a suspended INVITE with
// 487; a continue afterwards fails.
func TestSuspendTimeoutAndCancel(t *testing.T) {
	pp := startPeers(t, peerConfig, 1, func(pp *peers) string { return asyncScript })

	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0), "X-Short: 1"))
	start := time.Now()
	final, _ := recvFinal(t, pp.uac, 3*time.Second)
	if statusCode(final) != 408 {
		t.Fatalf("suspended INVITE never continued: got %q, want 408", startLine(final))
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("408 after %v, before the 300 ms fr_timer", el)
	}
	if !strings.Contains(pp.p.Log.String(), "failure route code=408") {
		t.Errorf("the failure route did not run for the timeout")
	}

	c := pp.p.UDPClient(t)
	inv := c.Request("INVITE", pp.uasURI(0))
	c.Send(inv)
	if statusCode(c.RecvRaw(2*time.Second)) != 100 {
		t.Fatal("no 100 Trying")
	}
	c.Send(cancelOf(inv))
	codes := map[int]bool{}
	for len(codes) < 2 {
		b := c.RecvRaw(2 * time.Second)
		codes[statusCode(b)] = true
	}
	if !codes[200] || !codes[487] {
		t.Fatalf("CANCEL of a suspended INVITE: got %v, want 200 (CANCEL) and 487 (INVITE)", codes)
	}
	expectSilence(t, pp.uas[0], 200*time.Millisecond)
	ctl := pp.p.UDPClient(t)
	ctl.Send(ctl.Request("MESSAGE", "sip:continue@127.0.0.1"))
	if got := startLine(ctl.RecvRaw(2 * time.Second)); got != "SIP/2.0 200 continue -1" {
		t.Errorf("t_continue of a cancelled transaction: %q, want -1", got)
	}
}
