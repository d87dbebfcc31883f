package dispatcher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// readmeScript is the README's example (docs: /work/frags/dispatcher.md), run here so it stays true.
const readmeScript = `
function ksr_request_route()
	if KSR.dispatcher.ds_select_dst(1, 4) < 0 then
		KSR.sl.sl_send_reply(404, "No destination")
		return
	end
	KSR.tm.t_on_failure("ksr_failure_ds")
	KSR.tm.t_relay()
end

function ksr_failure_ds()
	if KSR.tm.t_is_canceled() > 0 then return end
	if KSR.tm.t_check_status("500|503") > 0 or (KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0) then
		KSR.dispatcher.ds_mark_dst_state("ip")
		if KSR.dispatcher.ds_next_dst() > 0 then
			KSR.tm.t_on_failure("ksr_failure_ds")
			KSR.tm.t_relay()
		end
	end
end

function ksr_dispatcher_event(evname)
	evname = evname or KSR.pv.get("$dsg(event)")
	KSR.warn(evname .. ": " .. KSR.pv.get("$ru") .. " (" .. tostring(KSR.pv.get("$dsg(code)")) .. ")\n")
end
`

// TestReadmeExample: a destination answering 503 is marked down by the failure route and its calls go
// to the other one; the probing brings it back once it answers the pings.
func TestReadmeExample(t *testing.T) {
	u := []*uas{newUAS(t), newUAS(t)}
	u[1].code.Store(503)
	u[1].opt.Store(503)
	cfg := luaCfg + "[modules.sl]\n[modules.tm]\nfr_timer = 2000\n[modules.pv]\n[modules.dispatcher]\nflags = 2\n" +
		"ds_ping_interval = 1\nds_probing_mode = 1\nevent_callback = \"ksr_dispatcher_event\"\n" +
		"[[modules.dispatcher.dst]]\n" + dst(1, u[0].uri(), "") + "[[modules.dispatcher.dst]]\n" + dst(1, u[1].uri(), "")
	p := enginetest.Start(t, cfg, readmeScript)
	if ok, bad := load(t, p, 20, 2); ok != 20 {
		t.Fatalf("%d of 20 answered; %v", ok, bad)
	}
	if f := flagsOf(t, p)[u[1].uri()]; f != "IP" {
		t.Errorf("the destination answering 503 is %s, want IP", f)
	}
	if !strings.Contains(p.Log.String(), "dispatcher:dst-down") {
		t.Error("no dst-down event logged")
	}
	u[1].opt.Store(200)
	eventually(t, 3*time.Second, func() bool { return flagsOf(t, p)[u[1].uri()] == "AP" }, "back in rotation once it answers pings")
	if !strings.Contains(p.Log.String(), "dispatcher:dst-up: "+u[1].uri()+" (200)") {
		t.Error("no dst-up event logged")
	}
}
