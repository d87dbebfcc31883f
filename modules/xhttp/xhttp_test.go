package xhttp_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const kamCfg = enginetest.KamailioGlobals + `loadmodule "kex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xhttp.so"
modparam("xhttp", "event_callback", "ksr_xhttp_event")
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

var (
	exprs = []string{"KSR.xhttp.get_hu()", "KSR.pv.sets('$ru', 'sip:y@example.com') ~= nil", "KSR.xhttp.get_hu()"}
	want  = []string{"string:sip:x@127.0.0.1;transport=udp", "boolean:true", "string:sip:x@127.0.0.1;transport=udp"}
)

// replies: xhttp_reply on a SIP request sends a stateless SIP reply (the first one the client gets), with
// the body and the Content-Type (also for an empty body).
var replies = []struct {
	call string
	want []string // the reply's status line, then lines it must have
	not  string   // a line it must not have
}{
	{"KSR.xhttp.xhttp_reply(202, 'Taken', 'text/plain', 'hi')", []string{"SIP/2.0 202 Taken", "Content-Type: text/plain", "Content-Length: 2"}, ""},
	{"KSR.xhttp.xhttp_reply(404, 'Nope', 'text/plain', '')", []string{"SIP/2.0 404 Nope", "Content-Type: text/plain", "Content-Length: 0"}, ""},
}

func check(t *testing.T, who string, c func() *enginetest.Client) {
	got := c().Eval("OPTIONS", "sip:x@127.0.0.1;transport=udp", nil, exprs...)
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: %s = %q, want %q", who, exprs[i], got[i], want[i])
		}
	}
	for _, r := range replies {
		cl := c()
		cl.Send(cl.Request("OPTIONS", "sip:x@127.0.0.1", "X-Eval: "+r.call))
		raw := string(cl.RecvRaw(3 * time.Second))
		if !strings.HasPrefix(raw, r.want[0]+"\r\n") {
			t.Errorf("%s: %s: reply %q", who, r.call, raw)
			continue
		}
		for _, l := range r.want[1:] {
			if !strings.Contains(raw, "\r\n"+l+"\r\n") {
				t.Errorf("%s: %s: no %q in %q", who, r.call, l, raw)
			}
		}
		if r.not != "" && strings.Contains(raw, r.not) {
			t.Errorf("%s: %s: %q in %q", who, r.call, r.not, raw)
		}
	}
}

// TestSIPMessage: get_hu is the first line's URI (not the rewritten R-URI); xhttp_reply answers a SIP
// request statelessly; the same in Kamailio 5.6 when it is installed.
func TestSIPMessage(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.xhttp]\n", enginetest.EvalScript)
	check(t, "siplua", func() *enginetest.Client { return p.UDPClient(t) })
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/xhttp.so"); err != nil {
		t.Skip("no kamailio xhttp module")
	}
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(enginetest.EvalScript), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := enginetest.RunKamailio(t, dir, strings.ReplaceAll(strings.Replace(kamCfg, "disable_tcp=yes\n", "", 1), "SCRIPT", script))
	check(t, "kamailio", func() *enginetest.Client { return enginetest.NewUDPClient(t, netip.AddrPort(addr)) })
}
