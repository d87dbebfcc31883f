package tmx_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// TestRoutePredicates: t_is_branch_route, t_is_failure_route and t_is_reply_route are 1 only in their own
// kind of route and -1 elsewhere (the request route included).
func TestRoutePredicates(t *testing.T) {
	port := enginetest.FreePort(t)
	uas := enginetest.NewUDPClient(t, netip.MustParseAddrPort("127.0.0.1:"+strconv.Itoa(port)))
	p := enginetest.Start(t, fmt.Sprintf("[core]\nlisten = [\"udp:127.0.0.1:%d\"]\n", port)+
		"[modules.tm]\n[modules.tmx]\n[modules.sl]\n", `
local function where(name)
	KSR.info(name .. " b=" .. KSR.tmx.t_is_branch_route() .. " f=" .. KSR.tmx.t_is_failure_route() ..
		" r=" .. KSR.tmx.t_is_reply_route())
end
function ksr_request_route()
	if KSR.is_ACK() then return end
	where("request")
	KSR.tm.t_on_branch("br")
	KSR.tm.t_on_reply("rp")
	KSR.tm.t_on_failure("fl")
	KSR.seturi("sip:bob@`+uas.Addr.String()+`")
	KSR.tm.t_relay()
end
function br() where("branch") end
function rp() where("reply") end
function fl() where("failure") end
`)
	c := p.UDPClient(t)
	c.Send(c.Request("INVITE", "sip:bob@example.org"))
	inv := uas.RecvRaw(2 * time.Second)
	uas.Send(enginetest.ReplyTo(string(inv), 486))
	if final := c.RecvFinal(2 * time.Second); !strings.HasPrefix(string(final), "SIP/2.0 486") {
		t.Fatalf("UAC got %q", final)
	}
	log := p.Log.WaitCount(t, "failure b=", 1, 2*time.Second)
	for _, want := range []string{"request b=-1 f=-1 r=-1", "branch b=1 f=-1 r=-1", "reply b=-1 f=-1 r=1",
		"failure b=-1 f=1 r=-1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q:\n%s", want, log)
		}
	}
}

// TestPrecheckTrans: t_precheck_trans is 1 for a retransmission that arrives while the first copy is
// still being routed (another worker has it), -1 for the first copy, and -1 for ACK and CANCEL.
func TestPrecheckTrans(t *testing.T) {
	p := enginetest.Start(t, "[modules.tm]\n[modules.tmx]\n[modules.sl]\n[modules.pv]\n", `
function ksr_request_route()
	local pc = KSR.tmx.t_precheck_trans()
	KSR.info("precheck " .. KSR.kx.get_method() .. "=" .. pc)
	if KSR.is_ACK() or KSR.is_CANCEL() then return end
	if pc > 0 then KSR.pv.seti("$shv(go)", 1) return end
	KSR.tm.t_newtran()
	-- hold this copy in the route until the retransmission was seen by another worker (bounded)
	for i = 1, 2000000 do
		if KSR.pv.get("$shv(go)") == 1 then break end
	end
	KSR.tm.t_reply(486, "Busy Here")
end`)
	c := p.UDPClient(t)
	inv := c.Request("INVITE", "sip:bob@example.org")
	c.Send(inv)
	p.Log.WaitCount(t, "precheck INVITE=", 1, 2*time.Second)
	c.Send(inv)
	if final := c.RecvFinal(3 * time.Second); !strings.HasPrefix(string(final), "SIP/2.0 486") {
		t.Fatalf("UAC got %q", final)
	}
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "1 INVITE", "1 CANCEL", 1)
	c.Send(cancel)
	log := p.Log.WaitCount(t, "precheck CANCEL=", 1, 2*time.Second)
	for _, want := range []string{"precheck INVITE=-1", "precheck INVITE=1", "precheck CANCEL=-1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q:\n%s", want, log)
		}
	}
}
