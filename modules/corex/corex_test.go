package corex_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

func TestHasRURIUser(t *testing.T) {
	p := enginetest.Start(t, "[modules.corex]\n", "function ksr_request_route() end")
	const rest = " SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\n" +
		"Call-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	for _, c := range []struct{ ruri, want string }{
		{"sip:bob@127.0.0.1", "number:1"},
		{"sip:127.0.0.1", "number:-1"},
		{"sips:bob@example.com:5061;transport=tcp", "number:1"},
		{"tel:+4912345", "number:1"}, // Kamailio: the number of a tel: URI is its user
		{"tel:+4912345;phone-context=example.com", "number:1"},
	} {
		m := enginetest.Msg(t, p, "OPTIONS "+c.ruri+rest)
		if got := enginetest.Call(t, p.Export(t, "corex", "has_ruri_user"), m); got != c.want {
			t.Errorf("%s: has_ruri_user() = %s, want %s", c.ruri, got, c.want)
		}
	}
}

func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	c := p.UDPClient(t)
	got := c.Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.corex.has_ruri_user()`)
	if got[0] != "number:-1" {
		t.Errorf("has_ruri_user() = %s, want number:-1", got[0])
	}
	got = c.Eval("OPTIONS", "sip:bob@127.0.0.1", nil, `KSR.corex.has_ruri_user()`)
	if got[0] != "number:1" {
		t.Errorf("has_ruri_user() = %s, want number:1", got[0])
	}
}
