package enginetest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

const budgetScript = `
function spin()
	local n = 0
	while true do n = n + 1 end
end

function down(n) return down(n + 1) + 1 end

function ksr_request_route()
	local how = KSR.hdr.get("X-Spin")
	if how == "loop" then
		spin()
	elseif how == "pcall" then
		-- a pcall catches the cancel, but the next instruction outside it is cancelled again
		pcall(spin)
		while true do end
	elseif how == "recurse" then
		down(1)
	elseif how == "rep" then
		local s = string.rep("x", 2^40) -- over the bound: an error, not an out-of-memory crash
	elseif how == "replied" then
		KSR.sl.sl_send_reply(180, "Ringing")
		spin()
	end
	KSR.sl.sl_send_reply(200, "OK")
end`

// TestRouteTimeout: a route that never ends is cancelled after lua.route_timeout, the request gets 500 (a
// route that already answered gets nothing more), the log says where, route_timeouts counts it, and the
// single worker serves the next 1000 requests.
func TestRouteTimeout(t *testing.T) {
	p := enginetest.Start(t, "[lua]\nscript = \"script.lua\"\nroute_timeout = 50\n[core]\nworkers = 1\n[modules.sl]\n[modules.hdr]\n", budgetScript)
	c := p.UDPClient(t)
	tests := []struct {
		spin, want string
		timeout    bool
	}{
		{"loop", "500", true},
		{"pcall", "500", true},
		{"recurse", "500", false}, // stack overflow: an error, not a crash
		{"rep", "500", false},
		{"replied", "180", true}, // answered before the loop: no 500 after it
	}
	timeouts := uint64(0)
	for _, tc := range tests {
		t.Run(tc.spin, func(t *testing.T) {
			t0 := time.Now()
			c.Send(c.Request("OPTIONS", "sip:127.0.0.1", "X-Spin: "+tc.spin))
			r := c.RecvResponse(3 * time.Second)
			if got := r.StatusCode; got != atoi(tc.want) {
				t.Fatalf("got %d %s, want %s", got, r.Reason, tc.want)
			}
			if tc.spin == "replied" {
				if b, err := c.TryRecv(300 * time.Millisecond); err == nil {
					t.Fatalf("a second reply after the cancelled route: %q", b)
				}
			}
			if d := time.Since(t0); tc.timeout && d > time.Second {
				t.Errorf("answered after %v, want within the 50 ms budget (with slack)", d)
			}
			if tc.timeout {
				timeouts++
			}
			// counted when the worker is done with the message, just after the reply left
			eventually(t, func() bool { return p.E.Stats().Snapshot()["route_timeouts"] == timeouts }, func() string {
				return fmt.Sprintf("route_timeouts = %d, want %d", p.E.Stats().Snapshot()["route_timeouts"], timeouts)
			})
		})
	}
	if !strings.Contains(p.Log.String(), "script.lua:4 err=\"route timeout: did not finish within 50ms\"") {
		t.Errorf("log does not say where the route was cancelled:\n%s", p.Log.String())
	}
	// the worker that was cancelled serves on
	req := c.Request("OPTIONS", "sip:127.0.0.1")
	const window = 20
	for sent := 0; sent < 1000; sent += window {
		for i := 0; i < window; i++ {
			c.Send(req)
		}
		for i := 0; i < window; i++ {
			if r := c.RecvResponse(3 * time.Second); r.StatusCode != 200 {
				t.Fatalf("request %d after the timeouts: %d %s", sent+i, r.StatusCode, r.Reason)
			}
		}
	}
	eventually(t, func() bool { ws := p.E.Workers(); return len(ws) == 1 && !ws[0].Busy },
		func() string { return fmt.Sprintf("workers after the timeouts: %+v", p.E.Workers()) })
}

// eventually waits up to 2 s for cond, then fails with what describe says.
func eventually(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Error(describe())
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestReloadEndlessTopLevel: a reload whose top-level chunk never ends fails with file:line and the
// budget, and the running script keeps serving.
func TestReloadEndlessTopLevel(t *testing.T) {
	p := enginetest.Start(t, "[lua]\nscript = \"script.lua\"\nroute_timeout = 50\n[modules.sl]\n",
		`function ksr_request_route() KSR.sl.sl_send_reply(404, "Old") end`)
	p.WriteFile(t, "script.lua", "local n = 0\nwhile true do\n\tn = n + 1\nend\nfunction ksr_request_route() end\n")
	t0 := time.Now()
	_, err := p.Reload()
	if err == nil || !strings.Contains(err.Error(), "script.lua:") || !strings.Contains(err.Error(), "top-level chunk did not finish within 50ms") {
		t.Fatalf("reload: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("reload failed after %v", d)
	}
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 404 {
		t.Fatalf("after the failed reload: %d %s", r.StatusCode, r.Reason)
	}
}
