package sl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

func TestReplies(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	local code = tonumber(KSR.hdr.get("X-Code"))
	local r
	if KSR.hdr.get("X-Fn") == "error" then r = KSR.sl.sl_reply_error()
	elseif KSR.hdr.get("X-Fn") == "send_reply" then r = KSR.sl.send_reply(code, "Reason " .. code)
	else r = KSR.sl.sl_send_reply(code, "Reason " .. code) end
	if r ~= 1 then KSR.sl.sl_send_reply(500, "ret " .. type(r) .. " " .. tostring(r)) end
end`)
	c := p.UDPClient(t)
	for _, tc := range []struct {
		fn   string
		code string
		want string
	}{
		{"sl_send_reply", "404", "SIP/2.0 404 Reason 404\r\n"},
		{"send_reply", "200", "SIP/2.0 200 Reason 200\r\n"},
		{"sl_send_reply", "180", "SIP/2.0 180 Reason 180\r\n"},
		{"sl_send_reply", "99", "SIP/2.0 500 ret number -1\r\n"},
		{"sl_send_reply", "700", "SIP/2.0 500 ret number -1\r\n"},
		{"error", "0", "SIP/2.0 500 I'm terribly sorry, server error occurred (1/SL)\r\n"},
	} {
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1", "X-Fn: "+tc.fn, "X-Code: "+tc.code))
		got := string(c.RecvRaw(2 * time.Second))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s(%s): got\n%s", tc.fn, tc.code, got)
		}
	}
}

// TestTwice: two replies in one route both go out and both calls return 1, as in Kamailio.
func TestTwice(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	local a = KSR.sl.sl_send_reply(404, "No registrar")
	KSR.sl.sl_send_reply(405, "Again " .. type(a) .. a)
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("REGISTER", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 404 {
		t.Fatalf("first: %d", r.StatusCode)
	}
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 405 || r.Reason != "Again number1" {
		t.Fatalf("second: %d %s", r.StatusCode, r.Reason)
	}
}

func TestOnReply(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\nFrom: <sip:a@b>;tag=1\n"+
		"To: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	if got := enginetest.Call(t, p.Export(t, "sl", "sl_send_reply"), m, 200, "OK"); got != "number:-1" {
		t.Errorf("sl_send_reply on a reply = %s, want number:-1", got)
	}
}
