package enginetest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestStatelessReplyMultiValueVia: with two Via values in one header, only the first decides where a UDP
// reply goes (RFC 3261 §18.2.2): it has no rport, so the reply goes to its sent-by port, not to the source
// port that the second value's rport would pick.
func TestStatelessReplyMultiValueVia(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `function ksr_request_route() KSR.sl.sl_send_reply(404, "Nope") end`)
	c := p.UDPClient(t)     // sends; its port is the source port
	hop := p.UDPClient(t)   // the first Via's sent-by
	other := p.UDPClient(t) // the second Via's sent-by
	req := c.Request("OPTIONS", "sip:127.0.0.1")
	req = strings.Replace(req, "Via: SIP/2.0/UDP "+c.Addr.String()+";rport;",
		"Via: SIP/2.0/UDP "+hop.Addr.String()+";branch=z9hG4bKfirst, SIP/2.0/UDP "+other.Addr.String()+";rport;", 1)
	if !strings.Contains(req, "z9hG4bKfirst") {
		t.Fatal("request not rewritten")
	}
	c.Send(req)
	b := hop.RecvRaw(2 * time.Second)
	if !strings.HasPrefix(string(b), "SIP/2.0 404") {
		t.Fatalf("first Via's sent-by got %q", b)
	}
	if got, err := c.TryRecv(200 * time.Millisecond); err == nil {
		t.Fatalf("reply also went to the source port: %q", got)
	}
}
