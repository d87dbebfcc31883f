package core_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestKemiCallbacks: the [kemi] callbacks with Kamailio's meaning, on the wire.
//   - ksr_onsend_route (default name) runs before a stateless forward and a tm branch go out, with
//     $snd(ip)/$snd(port)/$snd(sproto)/$snd(len); KSR.drop() there stops the send and the forward returns -1;
//   - received_route_callback runs for every received message first; KSR.drop() discards it unanswered;
//   - pre_routing_callback runs with "core:pre-routing" before the request route; it may answer and drop;
//   - reply_route_callback renames ksr_reply_route: it runs for a stateless reply and may drop it.
func TestKemiCallbacks(t *testing.T) {
	p := enginetest.Start(t, `
[kemi]
received_route_callback = "on_received"
pre_routing_callback = "pre"
reply_route_callback = "my_reply"

[modules.sl]
[modules.tm]
`, `
function on_received()
	if KSR.hdr.is_present("X-Drop-Early") > 0 then KSR.drop() end
end
function pre(ev)
	if KSR.is_OPTIONS() then
		KSR.sl.sl_send_reply(200, "pre " .. ev)
		KSR.x.drop()
	end
end
function ksr_onsend_route()
	KSR.info("onsend to " .. KSR.pv.get("$snd(ip)") .. ":" .. KSR.pv.get("$snd(port)") .. " " ..
		KSR.pv.get("$snd(sproto)") .. " len>0=" .. tostring(KSR.pv.get("$snd(len)") > 0))
	if KSR.hdr.is_present("X-Block") > 0 then KSR.drop() end
end
function ksr_request_route()
	KSR.info("request route " .. KSR.kx.get_method())
	local rc
	if KSR.hdr.is_present("X-Stateful") > 0 then
		rc = KSR.tm.t_relay()
	else
		rc = KSR.forward_uri(KSR.hdr.get("X-Dst"))
	end
	if rc < 0 then KSR.sl.sl_send_reply(403, "blocked " .. rc) end
end
function my_reply()
	KSR.info("my_reply " .. KSR.kx.get_status())
	if KSR.kx.get_status() == 183 then KSR.x.drop() end
end
function ksr_reply_route()
	KSR.info("default reply route must not run")
end
`)
	c, uas := p.UDPClient(t), p.UDPClient(t)
	dst := "X-Dst: sip:" + uas.Addr.String()

	// onsend: passes, then blocks (stateless and tm)
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), dst))
	req := uas.RecvRaw(2 * time.Second)
	if !strings.HasPrefix(string(req), "MESSAGE ") {
		t.Fatalf("forwarded: %q", req)
	}
	want := "onsend to 127.0.0.1:" + itoa(int(uas.Addr.Port())) + " udp len>0=true"
	if !strings.Contains(p.Log.String(), want) {
		t.Errorf("log lacks %q", want)
	}
	// the reply: 183 dropped by my_reply, 200 relayed
	uas.Send(enginetest.ReplyTo(string(req), 183))
	uas.Send(enginetest.ReplyTo(string(req), 200))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		t.Errorf("reply after my_reply: %d, want 200 (183 dropped)", r.StatusCode)
	}
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), dst, "X-Block: 1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 403 || r.Reason != "blocked -1" {
		t.Errorf("onsend drop (forward): %d %s, want 403 blocked -1", r.StatusCode, r.Reason)
	}
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), "X-Stateful: 1", "X-Block: 1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 403 || r.Reason != "blocked -1" {
		t.Errorf("onsend drop (t_relay): %d %s, want 403 blocked -1", r.StatusCode, r.Reason)
	}
	if b, err := uas.TryRecv(300 * time.Millisecond); err == nil {
		t.Errorf("a dropped send reached the UAS: %q", b)
	}

	// received: dropped before anything else
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), dst, "X-Drop-Early: 1"))
	if b, err := c.TryRecv(300 * time.Millisecond); err == nil {
		t.Errorf("a message dropped by received_route_callback was answered: %q", b)
	}

	// pre-routing: answers OPTIONS itself, the request route never sees them
	c.Send(c.Request("OPTIONS", "sip:"+p.UDP.String()))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 || r.Reason != "pre core:pre-routing" {
		t.Errorf("pre-routing: %d %s", r.StatusCode, r.Reason)
	}
	log := p.Log.String()
	if strings.Contains(log, "request route OPTIONS") || strings.Contains(log, "default reply route") {
		t.Errorf("a route ran that the callbacks replaced:\n%s", log)
	}
	if n := strings.Count(log, "request route MESSAGE"); n != 3 {
		t.Errorf("request route ran %d times for MESSAGE, want 3 (the early-dropped one not)", n)
	}
}

// TestKemiConfig: the callback names must be Lua function names.
func TestKemiConfig(t *testing.T) {
	_, err := engine.ParseConfig([]byte("[kemi]\nonsend_route_callback = \"bad name\"\n"), "c.toml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `c.toml:2: kemi.onsend_route_callback: expected a Lua function name or "", got "bad name"`) {
		t.Errorf("error %v", err)
	}
}
