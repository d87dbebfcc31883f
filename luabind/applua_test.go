package luabind_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// appLuaScript is enginetest.EvalScript plus the functions KSR.app_lua.run calls.
const appLuaScript = enginetest.EvalScript + `
function f0() called0 = "yes" end
function f3(a, b, c) p3 = a .. b .. c end
function fexit() exited = "before"; KSR.x.exit(); exited = "after" end
function ferr() error("boom") end
`

// appLuaInclude is the file dofile runs (next to the script).
const appLuaInclude = `df_global = "set"
included = (included or 0) + 1
`

// appLuaCases run in one request, in order; want is what Kamailio 5.6.3's app_lua gives for the same
// expressions (TestAppLuaAgainstKamailio checks it when kamailio is installed).
var appLuaCases = []struct{ expr, want string }{
	{"KSR.app_lua.run('f0')", "number:1"},
	{"called0", "string:yes"},
	{"KSR.app_lua.run('nosuch')", "number:-1"},
	{"KSR.app_lua.run_p1('f3', 'a')", "number:-1"}, // b is nil: f3 raises
	{"KSR.app_lua.run_p3('f3', 'a', 'b', 'c')", "number:1"},
	{"p3", "string:abc"},
	{"KSR.app_lua.run_p2('f3', 'x', 'y')", "number:-1"},
	{"KSR.app_lua.run('fexit')", "number:1"},
	{"exited", "string:before"},
	{"KSR.app_lua.run('ferr')", "number:-1"},
	{"KSR.app_lua.runstring('rs_global = 7')", "number:1"},
	{"rs_global", "number:7"},
	{"KSR.app_lua.runstring('error(1)')", "number:-1"},
	{"KSR.app_lua.runstring('this is not lua')", "number:-1"},
	{"KSR.app_lua.runstring('KSR.x.exit()')", "number:-1"},
	{"KSR.app_lua.dostring('ds_global = 5')", "number:1"},
	{"ds_global", "nil:nil"},
	{"KSR.app_lua.dostring('error(2)')", "number:-1"},
	{"KSR.app_lua.dofile('inc.lua')", "number:1"},
	{"KSR.app_lua.dofile('inc.lua')", "number:1"},
	{"df_global", "nil:nil"},
	{"KSR.app_lua.dofile('nosuch.lua')", "number:-1"},
	{"KSR.app_lua.dofile('../inc.lua')", "number:-1"},
}

func appLuaEval(t *testing.T, c *enginetest.Client) []string {
	exprs := make([]string, len(appLuaCases))
	for i, c := range appLuaCases {
		exprs[i] = c.expr
	}
	return c.Eval("OPTIONS", "sip:x@127.0.0.1", nil, exprs...)
}

// TestAppLua: KSR.app_lua.* with app_lua's return codes; what runstring defines is the script's, what
// dostring/dofile define is not.
func TestAppLua(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.sl]\n", map[string]string{"script.lua": appLuaScript, "inc.lua": appLuaInclude})
	got := appLuaEval(t, p.UDPClient(t))
	for i, c := range appLuaCases {
		if got[i] != c.want {
			t.Errorf("%s = %q, want %q", c.expr, got[i], c.want)
		}
	}
	// an absolute path inside the script's directory is accepted, one outside is not
	c := p.UDPClient(t)
	res := c.Eval("OPTIONS", "sip:x@127.0.0.1", nil, "KSR.app_lua.dofile('"+filepath.Join(p.Dir, "inc.lua")+"')",
		"KSR.app_lua.dofile('/etc/hostname')")
	if res[0] != "number:1" || res[1] != "number:-1" {
		t.Errorf("dofile absolute inside/outside = %v, want [number:1 number:-1]", res)
	}
	if out := p.Log.String(); !strings.Contains(out, "not below the script's directory") {
		t.Errorf("the refused dofile is not logged:\n%s", out)
	}
}

const appLuaKamCfg = enginetest.KamailioGlobals + `loadmodule "kex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

// TestAppLuaAgainstKamailio runs appLuaCases in Kamailio 5.6's app_lua (the include in its working
// directory, which is the script's).
func TestAppLuaAgainstKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	for name, body := range map[string]string{script: appLuaScript, filepath.Join(dir, "inc.lua"): appLuaInclude} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := enginetest.RunKamailio(t, dir, strings.ReplaceAll(appLuaKamCfg, "SCRIPT", script))
	got := appLuaEval(t, enginetest.NewUDPClient(t, netip.AddrPort(addr)))
	for i, c := range appLuaCases {
		if got[i] != c.want {
			t.Errorf("kamailio: %s = %q, want %q", c.expr, got[i], c.want)
		}
	}
}
