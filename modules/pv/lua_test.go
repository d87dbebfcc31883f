package pv_test

import (
	"strconv"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestLuaTypes checks what Lua sees, against the values Kamailio 5.6 app_lua returned for the same calls.
func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, "[core]\nworkers = 1\n"+enginetest.AllModulesConfig(), enginetest.EvalScript)
	c := p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.pv.get("$rU")`, "nil:nil"},
		{`KSR.pv.get("$rd")`, "string:127.0.0.1"},
		{`KSR.pv.get("$rp")`, "string:5060"},
		{`KSR.pv.get("$rm")`, "string:REGISTER"},
		{`KSR.pv.get("$cs")`, "string:1"},
		{`KSR.pv.get("$sp")`, "number:" + strconv.Itoa(int(c.Addr.Port()))},
		{`KSR.pv.get("$Rp")`, "number:" + strconv.Itoa(int(p.UDP.Port()))},
		{`KSR.pv.get("$Ri")`, "string:127.0.0.1"},
		{`KSR.pv.get("$si")`, "string:127.0.0.1"},
		{`KSR.pv.get("$pr")`, "string:udp"},
		{`KSR.pv.get("$rs")`, "nil:nil"},
		{`KSR.pv.get("$du")`, "nil:nil"},
		{`KSR.pv.get("$tt")`, "nil:nil"},
		{`KSR.pv.get("$ua")`, "nil:nil"},
		{`KSR.pv.get("$cl")`, "number:0"},
		{`type(KSR.pv.get("$ml"))`, "string:number"},
		{`KSR.pv.get("$hdr(X-None)")`, "nil:nil"},
		{`KSR.pv.get("$var(x)")`, "number:0"},
		{`KSR.pv.get("$avp(x)")`, "nil:nil"},
		{`KSR.pv.get("$shv(x)")`, "number:0"},
		{`KSR.pv.getvn("$var(x)", 5)`, "number:0"},
		{`KSR.pv.getvn("$avp(x)", 5)`, "number:5"},
		{`KSR.pv.getvn("$hdr(X-None)", 7)`, "number:7"},
		{`KSR.pv.getvs("$avp(x)", "dflt")`, "string:dflt"},
		{`KSR.pv.getvs("$var(x)", "dflt")`, "number:0"},
		{`KSR.pv.getw("$avp(x)")`, "string:<null>"},
		{`KSR.pv.getw("$rU")`, "string:<null>"},
		{`KSR.pv.gete("$avp(x)")`, "string:"},
		{`KSR.pv.gete("$rU")`, "string:"},
		{`KSR.pv.geti("$cs")`, "number:1"},
		{`KSR.pv.is_null("$avp(x)")`, "boolean:true"},
		{`KSR.pv.is_null("$var(x)")`, "boolean:false"},
		{`KSR.pv.is_null("$rU")`, "boolean:true"},
		{`KSR.pv.sets("$var(y)", "abc")`, "boolean:true"},
		{`KSR.pv.get("$var(y)")`, "string:abc"},
		{`KSR.pv.seti("$var(n)", 42)`, "boolean:true"},
		{`KSR.pv.get("$var(n)")`, "number:42"},
		{`KSR.pv.seti("$var(n)", "43")`, "boolean:true"},
		{`KSR.pv.get("$var(n)")`, "number:43"},
		{`KSR.pv.sets("$var(s)", 12)`, "boolean:true"},
		{`KSR.pv.get("$var(s)")`, "string:12"},
		{`KSR.pv.unset("$var(y)")`, "boolean:true"},
		{`KSR.pv.get("$var(y)")`, "number:0"},
		{`KSR.pv.sets("nodollar", "x")`, "boolean:false"},
		{`KSR.pv.sets("$ci", "x")`, "boolean:true"},
		{`KSR.pv.sets("$shv(cnt)", "v")`, "boolean:true"},
		{`KSR.pv.sets("$rU", "bob")`, "boolean:true"},
		{`KSR.pv.get("$ru")`, "string:sip:bob@127.0.0.1"},
		{`KSR.kx.get_ruri()`, "string:sip:bob@127.0.0.1"},
		{`KSR.pv.get("$ou")`, "string:sip:127.0.0.1"},
		{`KSR.pv.seti("$var(w)", 1 + KSR.pv.get("$var(w)"))`, "boolean:true"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("REGISTER", "sip:127.0.0.1", nil, exprs...)
	for i, cs := range cases {
		if got[i] != cs.want {
			t.Errorf("%s = %s, want %s", cs.expr, got[i], cs.want)
		}
	}
	// $var stays with the worker (one worker here), $avp does not outlive its message, $shv is shared
	got = c.Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.pv.get("$var(w)")`, `KSR.pv.get("$var(n)")`,
		`KSR.pv.get("$avp(x)")`, `KSR.pv.get("$shv(cnt)")`)
	for i, want := range []string{"number:1", "number:43", "nil:nil", "string:v"} {
		if got[i] != want {
			t.Errorf("second message: result %d = %s, want %s", i, got[i], want)
		}
	}
	// a bad argument type is a Lua error, not a crash
	got = c.Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.pv.get({})`, `KSR.pv.seti("$var(a)", "x")`, `KSR.pv.get()`)
	for i, r := range got {
		if len(r) < 6 || r[:6] != "error:" {
			t.Errorf("bad argument %d: got %s, want a Lua error", i, r)
		}
	}
}
