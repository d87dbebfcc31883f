package enginetest_test

import (
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

func TestRegister404(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	if KSR.is_method("REGISTER") then
		KSR.sl.sl_send_reply(404, "No registrar")
		KSR.x.exit()
	end
end`)
	for _, c := range []*enginetest.Client{p.UDPClient(t), p.TCPClient(t)} {
		c.Send(c.Request("REGISTER", "sip:127.0.0.1"))
		r := c.RecvResponse(2 * time.Second)
		if r.StatusCode != 404 || r.Reason != "No registrar" {
			t.Fatalf("%s: got %d %s", c.Proto, r.StatusCode, r.Reason)
		}
	}
}
