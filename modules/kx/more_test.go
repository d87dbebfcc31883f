package kx_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestMoreKX: $au from Authorization / Proxy-Authorization, the advertised receiving address, the
// environment, and the getters of features siplua's TOML configuration does not have.
func TestMoreKX(t *testing.T) {
	t.Setenv("SIPLUA_KX_TEST", "42")
	p := enginetest.Start(t, "[modules.sl]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.kx.get_au()`, "string:alice"},
		{`KSR.kx.gete_au()`, "string:alice"},
		{`KSR.kx.get_rcvadvip()`, "string:127.0.0.1"},
		{`KSR.kx.get_rcvadvport()`, "string:" + itoa(int(p.UDP.Port()))},
		{`KSR.kx.get_env("SIPLUA_KX_TEST")`, "string:42"},
		{`KSR.kx.get_envn("SIPLUA_KX_TEST")`, "number:42"},
		{`KSR.kx.get_env("SIPLUA_KX_NOPE")`, "nil:nil"},
		{`KSR.kx.get_def("WITH_AUTH")`, "string:"},
		{`KSR.kx.get_defn("X")`, "number:0"},
		{`KSR.kx.ifdef("WITH_AUTH")`, "boolean:false"},
		{`KSR.kx.ifndef("WITH_AUTH")`, "boolean:true"},
		{`KSR.kx.get_conid()`, "number:-1"},
		{`KSR.kx.get_rcv_sock_name()`, "nil:nil"},
		{`KSR.kx.get_send_sock()`, "nil:nil"},
		{`KSR.kx.get_send_sock_port()`, "number:0"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("REGISTER", "sip:127.0.0.1", []string{
		`Proxy-Authorization: Digest username="bob", realm="x", nonce="n", uri="sip:127.0.0.1", response="r"`,
		`Authorization: Digest realm="127.0.0.1", username="alice@127.0.0.1", nonce="abc", uri="sip:127.0.0.1", response="0"`,
	}, exprs...)
	for i, cs := range cases {
		if got[i] != cs.want {
			t.Errorf("%s = %s, want %s", cs.expr, got[i], cs.want)
		}
	}
	got = c.Eval("INVITE", "sip:127.0.0.1", []string{
		`Proxy-Authorization: Digest username="bob", realm="x", nonce="n", uri="sip:127.0.0.1", response="r"`,
	}, `KSR.kx.get_au()`, `KSR.kx.getw_au()`)
	if got[0] != "string:bob" || got[1] != "string:bob" {
		t.Errorf("$au from Proxy-Authorization: %v", got)
	}
	got = c.Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.kx.get_au()`, `KSR.kx.getw_au()`, `KSR.kx.gete_au()`)
	if strings.Join(got, ",") != "nil:nil,string:<null>,string:" {
		t.Errorf("no credentials: %v", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
