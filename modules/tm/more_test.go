package tm_test

import (
	"strings"
	"testing"
	"time"
)

// TestMoreTM: t_relay_to_proxy, t_on_branch_failure (run for the 486 before the caller gets it),
// t_get_branch_index / t_grep_status in the failure route, t_lookup_request on a retransmission, and
// t_uac_send with tm's event_callback ("tm:local-request").
func TestMoreTM(t *testing.T) {
	pp := startPeers(t, strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\nevent_callback = \"tm_event\"\n", 1), 2, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.tm.t_lookup_request() > 0 then KSR.info("retransmission seen by t_lookup_request") end
	if KSR.is_MESSAGE() then
		local rc = KSR.tm.t_uac_send("OPTIONS", "` + pp.uasURI(1) + `", "", "",
			"From: <sip:proxy@127.0.0.1>;tag=uac1\r\nTo: <` + pp.uasURI(1) + `>\r\nX-Uac: 1\r\n", "")
		KSR.sl.sl_send_reply(200, "uac " .. rc)
		return 1
	end
	KSR.tm.t_on_branch_failure("bfail")
	KSR.tm.t_on_failure("failed")
	KSR.info("branch index in request route=" .. KSR.tm.t_get_branch_index())
	if KSR.tm.t_relay_to_proxy("udp:` + pp.uas[0].Addr.String() + `") < 0 then KSR.sl.sl_send_reply(500, "relay") end
end
function bfail(ev)
	KSR.info("branch failure arg=" .. tostring(ev) .. " code=" .. KSR.tm.t_get_status_code() .. " method=" ..
		KSR.kx.get_method() .. " ruri=" .. KSR.kx.get_ruri() .. " index=" .. KSR.tm.t_get_branch_index())
end
function failed()
	KSR.info("failure index=" .. KSR.tm.t_get_branch_index() .. " grep486=" .. KSR.tm.t_grep_status(486) ..
		" grep404=" .. KSR.tm.t_grep_status(404))
end
function tm_event(ev)
	KSR.info("tm event " .. ev .. " method=" .. KSR.kx.get_method() .. " x-uac=" .. KSR.hdr.get("X-Uac"))
end
`
	})
	inv := pp.uac.Request("INVITE", "sip:bob@example.com")
	pp.uac.Send(inv)
	got := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	if startLine(got) != "INVITE sip:bob@example.com SIP/2.0" {
		t.Errorf("t_relay_to_proxy sent %q", startLine(got))
	}
	pp.uac.Send(inv) // a retransmission
	time.Sleep(100 * time.Millisecond)
	answer(t, pp.uas[0], got, "486 Busy Here")
	final, _ := recvFinal(t, pp.uac, 2*time.Second)
	if statusCode(final) != 486 {
		t.Fatalf("caller got %q, want 486", startLine(final))
	}

	c := pp.p.UDPClient(t)
	c.Send(c.Request("MESSAGE", "sip:proxy@127.0.0.1"))
	if r := startLine(c.RecvRaw(2 * time.Second)); r != "SIP/2.0 200 uac 1" {
		t.Errorf("t_uac_send: %q", r)
	}
	opt := recvRequest(t, pp.uas[1], "OPTIONS", 2*time.Second)
	if h := header(opt, "X-Uac"); len(h) != 1 || len(header(opt, "Call-ID")) != 1 || len(header(opt, "CSeq")) != 1 {
		t.Errorf("t_uac_send request:\n%s", opt)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(pp.p.Log.String(), "tm event tm:local-request method=OPTIONS x-uac=1") {
		if time.Now().After(deadline) {
			t.Fatalf("event_callback did not run with tm:local-request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	log := pp.p.Log.String()
	for _, want := range []string{
		"branch index in request route=0",
		"retransmission seen by t_lookup_request",
		"branch failure arg=nil code=486 method=INVITE ruri=sip:bob@example.com index=0",
		"failure index=0 grep486=1 grep404=-1",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestMoreTM2: t_replicate (the copy's answer never reaches the caller), t_lookup_cancel_flags (the
// CANCEL gets the INVITE's flags), t_set_fr_inv (a ringing branch times out after it: 408).
func TestMoreTM2(t *testing.T) {
	pp := startPeers(t, peerConfig, 2, func(pp *peers) string {
		return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_CANCEL() then
		KSR.info("lookup_cancel=" .. KSR.tm.t_lookup_cancel_flags(1) .. " flag3=" .. tostring(KSR.isflagset(3)))
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	KSR.setflag(3)
	if KSR.hdr.is_present("X-Replicate") > 0 then
		KSR.info("replicate rc=" .. KSR.tm.t_replicate("` + pp.uasURI(1) + `"))
	end
	if KSR.hdr.is_present("X-Short") > 0 then KSR.tm.t_set_fr_inv(300) end
	KSR.tm.t_relay()
end
`
	})
	pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0), "X-Replicate: 1"))
	a := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	c := recvRequest(t, pp.uas[1], "INVITE", 2*time.Second)
	pp.uas[1].Send(replyTo(string(c), "200 OK", "copy"))
	answer(t, pp.uas[0], a, "486 Busy Here")
	if final, _ := recvFinal(t, pp.uac, 2*time.Second); statusCode(final) != 486 {
		t.Errorf("caller got %q, want the 486 of the real branch (not the copy's 200)", startLine(final))
	}

	inv := pp.uac.Request("INVITE", pp.uasURI(0), "X-Short: 1")
	pp.uac.Send(inv)
	a = recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	pp.uas[0].Send(replyTo(string(a), "180 Ringing", "u1"))
	start := time.Now()
	final, _ := recvFinal(t, pp.uac, 3*time.Second)
	if statusCode(final) != 408 || time.Since(start) > 2*time.Second {
		t.Errorf("t_set_fr_inv(300): caller got %q after %v, want 408 soon", startLine(final), time.Since(start))
	}

	inv = pp.uac.Request("INVITE", pp.uasURI(0))
	pp.uac.Send(inv)
	recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	pp.uac.Send(cancelOf(inv))
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(pp.p.Log.String(), "lookup_cancel=1 flag3=true") {
		if time.Now().After(deadline) {
			t.Fatalf("t_lookup_cancel_flags(1) did not copy the INVITE's flag:\n%s", pp.p.Log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(pp.p.Log.String(), "replicate rc=1") {
		t.Errorf("t_replicate rc not 1")
	}
}
