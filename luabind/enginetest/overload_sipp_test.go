package enginetest_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// overloadScript is a stateful record-routing proxy (scripts/bench/S2.lua) whose initial INVITE holds the
// worker in a bounded busy wait, so that one worker handles fewer calls per second than SIPp offers
// (400/s), whatever the machine.
const overloadScript = `
local function relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then
				KSR.tm.t_relay()
			end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			KSR.tm.t_relay()
		end
		return 1
	end
	if KSR.is_INVITE() then
		-- the cost of an initial INVITE: the worker is busy for at least 5 ms (os.clock is wall time in
		-- gopher-lua), so it routes at most 200 calls/s on any machine
		local t = os.clock() + 0.005
		while os.clock() < t do end
		KSR.rr.record_route()
	end
	relay()
	return 1
end
`

// Issue 10: SIPp calls above the proxy's capacity (one worker, queue of 4). New INVITEs beyond the queue
// get 503 + Retry-After; every call that was answered still ends cleanly (ACK, BYE, 200) because the
// replies and ACKs go ahead of new requests. Neither SIPp retransmits (INVITE, 200), so a reply or ACK
// the proxy lost fails a call instead of being repaired. A BYE is a new request for the queue: it may get
// 503 too, and the caller sends it again after Retry-After.
func TestOverloadSIPp(t *testing.T) {
	const calls = 1000 // offered at 400/s: 2.5 s of traffic
	p := enginetest.Start(t, `
[core]
workers = 1
queue = 4
overload = "503"
retry_after = 1
[modules.sl]
[modules.tm]
[modules.rr]
[modules.siputils]
`, overloadScript)
	dir := t.TempDir()
	uasStats := filepath.Join(dir, "uas.csv")
	uas := enginetest.StartSIPp(t, "uas", filepath.Join("testdata", "sipp", "overload-uas.xml"),
		"-trace_stat", "-stf", uasStats, "-fd", "1", "-recv_timeout", "10000", "-nd")
	uacStats := filepath.Join(dir, "uac.csv")
	uac := enginetest.StartSIPp(t, "uac", filepath.Join("testdata", "sipp", "overload-uac.xml"), p.UDP.String(),
		"-s", "bob", "-key", "target", uas.Addr(), "-r", "400", "-m", strconv.Itoa(calls),
		"-trace_stat", "-stf", uacStats, "-fd", "1", "-recv_timeout", "10000", "-nd")
	werr := uac.Wait(25 * time.Second)
	st, err := overloadSIPpStats(uacStats)
	if err != nil {
		t.Fatalf("uac statistics: %v (sipp: %v)", err, werr)
	}
	n := func(name string) int { v, _ := strconv.Atoi(st[name]); return v }
	inv503, inv200 := n("invite503(C)"), n("invite200(C)")
	bye503, bye200 := n("bye503(C)"), n("bye200(C)")
	snap := p.E.Stats().Snapshot()
	t.Logf("uac: %s calls, %s successful, %s failed (%s unexpected); INVITE: %d × 503, %d × 200; BYE: %d × 503, %d × 200; proxy: rejected_overload %d, dropped_priority_queue_full %d, dropped_queue_full %d",
		st["TotalCallCreated"], st["SuccessfulCall(C)"], st["FailedCall(C)"], st["FailedUnexpectedMessage(C)"],
		inv503, inv200, bye503, bye200, snap["rejected_overload"], snap["dropped_priority_queue_full"], snap["dropped_queue_full"])
	if werr != nil {
		t.Errorf("uac: %v; errors:\n%s", werr, enginetest.Tail(string(uac.ErrorLog()), 3000))
	}
	if got := n("SuccessfulCall(C)"); got != calls || n("FailedCall(C)") != 0 {
		t.Errorf("uac: %d successful, %s failed calls, want %d and 0", got, st["FailedCall(C)"], calls)
	}
	if inv503 == 0 {
		t.Errorf("no INVITE got 503: the proxy was not overloaded")
	}
	if inv200 == 0 {
		t.Errorf("no INVITE got 200: nothing was routed under overload")
	}
	if inv503+inv200 != calls {
		t.Errorf("INVITE: %d × 503 + %d × 200, want %d calls", inv503, inv200, calls)
	}
	if bye200 != inv200 {
		t.Errorf("%d calls answered, %d ended with BYE/200", inv200, bye200)
	}
	if bye503 != 0 { // in-dialog requests are never refused: they go to the priority queue
		t.Errorf("%d BYEs got 503: a call in progress must be able to end under overload", bye503)
	}
	if got := snap["rejected_overload"]; got != uint64(inv503+bye503) {
		t.Errorf("rejected_overload = %d, want %d (503s SIPp got)", got, inv503+bye503)
	}
	if got := snap["dropped_priority_queue_full"]; got != 0 {
		t.Errorf("dropped_priority_queue_full = %d, want 0", got)
	}
	if got := snap["dropped_queue_full"]; got != 0 { // overload = "503": refused, never dropped
		t.Errorf("dropped_queue_full = %d, want 0", got)
	}

	// The callee: every call it answered got its ACK and its BYE (its statistics come once a second).
	var ust map[string]string
	deadline := time.Now().Add(5 * time.Second)
	for {
		ust, err = overloadSIPpStats(uasStats)
		if err == nil && ust["SuccessfulCall(C)"] == strconv.Itoa(inv200) && ust["CurrentCall"] == "0" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("uas statistics: %v", err)
	}
	t.Logf("uas: %s calls, %s successful, %s failed", ust["TotalCallCreated"], ust["SuccessfulCall(C)"], ust["FailedCall(C)"])
	if ust["SuccessfulCall(C)"] != strconv.Itoa(inv200) || ust["FailedCall(C)"] != "0" || ust["CurrentCall"] != "0" {
		t.Errorf("uas: %s successful, %s failed, %s open calls; want %d, 0, 0; errors:\n%s",
			ust["SuccessfulCall(C)"], ust["FailedCall(C)"], ust["CurrentCall"], inv200, enginetest.Tail(string(uas.ErrorLog()), 3000))
	}
}

// overloadSIPpStats returns the last row of a SIPp -trace_stat file by column name.
func overloadSIPpStats(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return nil, os.ErrNotExist
	}
	names := strings.Split(lines[0], ";")
	vals := strings.Split(lines[len(lines)-1], ";")
	st := map[string]string{}
	for i, n := range names {
		if i < len(vals) {
			st[strings.TrimSpace(n)] = strings.TrimSpace(vals[i])
		}
	}
	return st, nil
}
