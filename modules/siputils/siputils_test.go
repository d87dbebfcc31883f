package siputils_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

func TestChecks(t *testing.T) {
	p := enginetest.Start(t, "[modules.siputils]\n", "function ksr_request_route() end")
	const head = "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\nFrom: <sip:a@b>;tag=1\nCall-ID: x\n"
	msgs := map[string]string{
		"req":           "INVITE sip:b@c SIP/2.0\n" + head + "To: <sip:b@c>\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
		"req totag":     "BYE sip:b@c SIP/2.0\n" + head + "To: <sip:b@c>;tag=t1\nCSeq: 2 BYE\nContent-Length: 0\n\n",
		"req empty tag": "BYE sip:b@c SIP/2.0\n" + head + "To: <sip:b@c;tag=uri>\nCSeq: 2 BYE\nContent-Length: 0\n\n",
		"req 2 vias":    "INVITE sip:b@c SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0\n" + head + "To: <sip:b@c>\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
		"req 2 in one":  "INVITE sip:b@c SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2\nFrom: <sip:a@b>;tag=1\nCall-ID: x\nTo: <sip:b@c>\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
		"req compact":   "BYE sip:b@c SIP/2.0\n" + head + "t: \"x>y\" <sip:b@c> ;tag=t2\nCSeq: 2 BYE\nContent-Length: 0\n\n",
		"req no value":  "BYE sip:b@c SIP/2.0\n" + head + "To: <sip:b@c>;tag=\nCSeq: 2 BYE\nContent-Length: 0\n\n",
		"reply":         "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0\n" + head + "To: <sip:b@c>;tag=t\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
	}
	for _, c := range []struct{ msg, fn, want string }{
		{"req", "has_totag", "number:-1"},
		{"req totag", "has_totag", "number:1"},
		{"req empty tag", "has_totag", "number:-1"},
		{"req compact", "has_totag", "number:1"},
		{"req no value", "has_totag", "number:-1"},
		{"reply", "has_totag", "number:1"},
		{"req", "is_request", "number:1"},
		{"req", "is_reply", "number:-1"},
		{"reply", "is_request", "number:-1"},
		{"reply", "is_reply", "number:1"},
		{"req", "is_first_hop", "number:1"},
		{"req 2 vias", "is_first_hop", "number:-1"},
		{"req 2 in one", "is_first_hop", "number:-1"},
		{"reply", "is_first_hop", "number:1"},
	} {
		m := enginetest.Msg(t, p, msgs[c.msg])
		if got := enginetest.Call(t, p.Export(t, "siputils", c.fn), m); got != c.want {
			t.Errorf("%s: siputils.%s() = %s, want %s", c.msg, c.fn, got, c.want)
		}
	}
}

func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	c := p.UDPClient(t)
	got := c.Eval("OPTIONS", "sip:127.0.0.1", nil, `KSR.siputils.has_totag()`, `type(KSR.siputils.has_totag())`,
		`KSR.siputils.is_request()`, `KSR.siputils.is_reply()`, `KSR.siputils.is_first_hop()`)
	for i, want := range []string{"number:-1", "string:number", "number:1", "number:-1", "number:1"} {
		if got[i] != want {
			t.Errorf("result %d = %s, want %s", i, got[i], want)
		}
	}
}
