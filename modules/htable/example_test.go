package htable_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestExampleBan runs the htable part of the load balancer example: the requests over the limit are
// dropped, and so is everything after from that address, until an operator removes the ban.
func TestExampleBan(t *testing.T) {
	snippet, err := os.ReadFile("testdata/loadbalancer-htable.lua")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(string(snippet), "local BAN_LIMIT = 50", "local BAN_LIMIT = 5", 1) + `
function ksr_request_route()
	route_ipban()
	KSR.sl.sl_send_reply(200, "OK")
end
`
	p := enginetest.Start(t, luaCfg+`[core]
workers = 2
[modules.sl]
[modules.kx]
[modules.htable]
[modules.htable.tables.ipban]
autoexpire = 300
[modules.htable.tables.rate]
autoexpire = 10
updateexpire = false
initval = 0
`, script)
	sock := startCtl(t, p)
	c := p.UDPClient(t)
	send := func() int {
		c.Send(c.Request("OPTIONS", "sip:lb@127.0.0.1"))
		raw, err := c.TryRecv(300 * time.Millisecond)
		if err != nil {
			return 0 // dropped
		}
		code := strings.Fields(string(raw))[1]
		if code != "200" {
			t.Fatalf("unexpected reply %q", raw)
		}
		return 200
	}
	for i := 1; i <= 5; i++ {
		if got := send(); got != 200 {
			t.Fatalf("request %d: %d, want 200", i, got)
		}
	}
	for i := 6; i <= 7; i++ {
		if got := send(); got != 0 {
			t.Fatalf("request %d over the limit: %d, want dropped", i, got)
		}
	}
	if got := call(t, sock, "htable.get", "ipban", "127.0.0.1"); !strings.Contains(got, `"value":1`) {
		t.Fatalf("ipban entry: %s", got)
	}
	call(t, sock, "htable.delete", "ipban", "127.0.0.1")
	call(t, sock, "htable.delete", "rate", "127.0.0.1")
	if got := send(); got != 200 {
		t.Fatalf("after unban: %d, want 200", got)
	}
}
