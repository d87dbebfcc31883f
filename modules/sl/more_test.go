package sl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestSendReplyMode: send_reply_mode answers like send_reply (mode 2: no new connection, UDP unaffected).
func TestSendReplyMode(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route() KSR.sl.send_reply_mode(202, "Mode", 2) end`)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 202 || r.Reason != "Mode" {
		t.Errorf("got %d %s", r.StatusCode, r.Reason)
	}
}

// TestSLForwardReply: in the reply route, sl_forward_reply relays the reply with a new reason (a code of
// another class is refused), and KSR.x.drop() then keeps the engine from relaying it a second time.
func TestSLForwardReply(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route() KSR.forward_uri(KSR.hdr.get("X-Dst")) end
function ksr_reply_route()
	KSR.info("other class rc=" .. KSR.sl.sl_forward_reply("302", ""))
	KSR.info("rc=" .. KSR.sl.sl_forward_reply("202", "Changed"))
	KSR.x.drop()
end`)
	c, uas := p.UDPClient(t), p.UDPClient(t)
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), "X-Dst: sip:"+uas.Addr.String()))
	req := uas.RecvRaw(2 * time.Second)
	uas.Send(enginetest.ReplyTo(string(req), 200))
	r := c.RecvRaw(2 * time.Second)
	if !strings.HasPrefix(string(r), "SIP/2.0 202 Changed\r\n") || strings.Count(string(r), "Via:") != 1 {
		t.Errorf("forwarded reply:\n%s", r)
	}
	if b, err := c.TryRecv(300 * time.Millisecond); err == nil {
		t.Errorf("a second copy: %q", b)
	}
	log := p.Log.String()
	if !strings.Contains(log, "other class rc=-1") || !strings.Contains(log, "rc=1") {
		t.Errorf("return codes in the log:\n%s", log)
	}
}
