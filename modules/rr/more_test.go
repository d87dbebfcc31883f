package rr_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// TestNextHopRoute: next_hop_route is 1 after loose_route sent the request to a Route address, -1 when it
// routes by the R-URI; loose_route_mode routes as loose_route.
func TestNextHopRoute(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.rr]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	me := "<sip:" + p.UDP.String() + ";lr>"
	got := c.Eval("BYE", "sip:bob@127.0.0.1:7", []string{"Route: " + me + ", <sip:127.0.0.1:9;lr>"},
		`KSR.rr.next_hop_route()`, `KSR.rr.loose_route_mode(1)`, `KSR.kx.get_duri()`, `KSR.rr.next_hop_route()`)
	want := []string{"number:-1", "number:1", "string:sip:127.0.0.1:9;lr", "number:1"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("with a next Route: result %d = %s, want %s", i, got[i], want[i])
		}
	}
	got = c.Eval("BYE", "sip:bob@127.0.0.1:7", []string{"Route: " + me},
		`KSR.rr.loose_route()`, `KSR.rr.next_hop_route()`)
	if got[0] != "number:1" || got[1] != "number:-1" {
		t.Errorf("only our Route: %v, want loose_route 1, next_hop_route -1", got)
	}
}
