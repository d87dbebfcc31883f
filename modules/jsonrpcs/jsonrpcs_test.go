package jsonrpcs_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// kamCfg runs enginetest.EvalScript in Kamailio 5.6 with jsonrpcs loaded (its FIFO/datagram transports
// off: exec needs none).
const kamCfg = enginetest.KamailioGlobals + `loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "jsonrpcs.so"
modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "DIR/kamailio_rpc.sock")
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

const uptime = `KSR.jsonrpcs.exec('{"jsonrpc": "2.0", "method": "core.uptime", "id": 1}')`

// cases: each row's expressions run in one request, in order (an exec's answer is seen by the later
// ones). same: Kamailio 5.6 gives the same results (checked when kamailio is installed).
var cases = []struct {
	name  string
	exprs []string
	want  []string
	same  bool
}{
	{"before any exec", []string{"KSR.jsonrpcs.response()", "KSR.pv.get('$jsonrpl(code)')", "KSR.pv.get('$jsonrpl(text)')", "KSR.pv.get('$jsonrpl(body)')"},
		[]string{"string:", "number:0", "nil:nil", "nil:nil"}, true},
	{"not json", []string{"KSR.jsonrpcs.exec('not json')", "KSR.jsonrpcs.exec('')", "KSR.pv.get('$jsonrpl(code)')"},
		[]string{"number:-1", "number:-1", "number:0"}, true},
	{"core.uptime", []string{uptime, "KSR.pv.get('$jsonrpl(code)')", "KSR.pv.get('$jsonrpl(text)')",
		"string.find(KSR.pv.get('$jsonrpl(body)'), '\"uptime\"', 1, true) ~= nil",
		"string.find(KSR.jsonrpcs.response(), '\"result\"', 1, true) ~= nil",
		"KSR.jsonrpcs.execx('{\"jsonrpc\": \"2.0\", \"method\": \"system.listMethods\", \"id\": 2}')",
		"string.find(KSR.jsonrpcs.response(), 'core.uptime', 1, true) ~= nil"},
		[]string{"number:1", "number:200", "string:OK", "boolean:true", "boolean:true", "number:1", "boolean:true"}, true},
	// Kamailio answers an unknown method with 500 "Method Not Found"; siplua's control socket with
	// JSON-RPC's -32601: both are an error after exec's 1.
	{"unknown method", []string{`KSR.jsonrpcs.exec('{"jsonrpc": "2.0", "method": "no.such", "id": 3}')`, "KSR.pv.get('$jsonrpl(code)') ~= 200"},
		[]string{"number:1", "boolean:true"}, true},
	{"dispatch outside http", []string{"KSR.jsonrpcs.dispatch()"}, []string{"number:-1"}, false},
}

// TestExec: KSR.jsonrpcs.exec/execx run ctl commands from a route; $jsonrpl and response() give the answer.
func TestExec(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.jsonrpcs]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	for _, tc := range cases {
		got := c.Eval("OPTIONS", "sip:x@127.0.0.1", nil, tc.exprs...)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %s = %q, want %q", tc.name, tc.exprs[i], got[i], tc.want[i])
			}
		}
	}
}

// TestExecAgainstKamailio runs the same rows in Kamailio 5.6 (app_lua, jsonrpcs).
func TestExecAgainstKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(enginetest.EvalScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(strings.ReplaceAll(kamCfg, "SCRIPT", script), "DIR", dir)
	addr := enginetest.RunKamailio(t, dir, cfg)
	c := enginetest.NewUDPClient(t, netip.AddrPort(addr))
	for _, tc := range cases {
		if !tc.same {
			continue
		}
		got := c.Eval("OPTIONS", "sip:x@127.0.0.1", nil, tc.exprs...)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("kamailio %s: %s = %q, want %q", tc.name, tc.exprs[i], got[i], tc.want[i])
			}
		}
	}
}
