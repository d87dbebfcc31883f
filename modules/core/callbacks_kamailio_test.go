package core_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// callbacksCmpScript runs unchanged in Kamailio 5.6 (kemi.* core parameters) and in siplua ([kemi]).
const callbacksCmpScript = `
function pre(ev)
	if KSR.is_OPTIONS() and KSR.hdr.is_present("X-Pre") > 0 then
		KSR.sl.sl_send_reply(200, "pre " .. ev)
		KSR.x.drop()
	end
end
function ksr_onsend_route()
	KSR.pv.sets("$var(snd)", KSR.pv.get("$snd(ip)") .. ":" .. KSR.pv.get("$snd(port)") .. "/" .. KSR.pv.get("$snd(proto)"))
end
function ksr_request_route()
	if KSR.hdr.get("X-Fn") == "ping" then KSR.sl.sl_send_reply(200, "Pong") return 1 end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.pv.sets("$var(snd)", "none")
	local rc
	if KSR.hdr.is_present("X-Stateful") > 0 then
		rc = KSR.tm.t_relay()
	else
		rc = KSR.forward_uri(KSR.hdr.get("X-Dst"))
	end
	if KSR.hdr.is_present("X-Show") > 0 then KSR.sl.sl_send_reply(299, "rc " .. rc .. " snd=" .. KSR.pv.get("$var(snd)")) end
end
function my_reply()
	if KSR.kx.get_status() == 183 then KSR.x.drop() end
end
`

const callbacksKamailioCfg = `#!KAMAILIO
debug=1
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
server_signature=no
sip_warning=0
kemi.onsend_route_callback="ksr_onsend_route"
kemi.reply_route_callback="my_reply"
kemi.pre_routing_callback="pre"
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

// TestKemiCallbacksKamailio: the same script through Kamailio 5.6 and siplua: ksr_onsend_route runs before
// a stateless forward and a t_relay branch with $snd set, the pre-routing callback answers with its event
// name, the renamed reply route drops a 183 and lets the 200 through. (A drop in the onsend callback is not
// compared: Kamailio 5.6's app_lua ignores it, siplua honours it; see TestKemiCallbacks.)
func TestKemiCallbacksKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio app_lua module missing: %v", err)
		}
		t.Skipf("kamailio app_lua module missing: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(callbacksCmpScript), 0o644); err != nil {
		t.Fatal(err)
	}
	kam := enginetest.RunKamailio(t, dir, strings.Replace(callbacksKamailioCfg, "SCRIPT", script, 1), "X-Fn: ping")
	p := enginetest.Start(t, `
[kemi]
reply_route_callback = "my_reply"
pre_routing_callback = "pre"
[modules.sl]
[modules.tm]
[modules.tmx]
`, callbacksCmpScript)

	flow := func(c, uas *enginetest.Client) []string {
		var seen []string
		norm := func(s string) string { return strings.ReplaceAll(s, uas.Addr.String(), "UAS") }
		recv := func(c *enginetest.Client) string {
			b, err := c.TryRecv(2 * time.Second)
			if err != nil {
				return "nothing"
			}
			return startLine(b)
		}
		dst := "X-Dst: sip:" + uas.Addr.String()
		c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), dst))
		req := uas.RecvRaw(2 * time.Second)
		seen = append(seen, "uas: "+norm(startLine(req)))
		uas.Send(enginetest.ReplyTo(string(req), 183))
		time.Sleep(50 * time.Millisecond)
		uas.Send(enginetest.ReplyTo(string(req), 200))
		seen = append(seen, "caller: "+recv(c))
		for _, h := range [][]string{{dst, "X-Show: 1"}, {"X-Stateful: 1", "X-Show: 1"}} {
			c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), h...))
			seen = append(seen, "caller: "+norm(recv(c)))
			seen = append(seen, "uas: "+norm(recv(uas)))
		}
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1", "X-Pre: 1"))
		seen = append(seen, "caller: "+recv(c))
		return seen
	}
	want := flow(enginetest.NewUDPClient(t, kam), enginetest.NewUDPClient(t, kam))
	got := flow(p.UDPClient(t), p.UDPClient(t))
	t.Logf("kamailio and siplua:\n  %s", strings.Join(want, "\n  "))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("siplua:\n  %s\nkamailio:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func startLine(b []byte) string { l, _, _ := strings.Cut(string(b), "\r\n"); return l }
