package hdr_test

import (
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestMatchContent: hdr.match_content with Kamailio 5.6's operators and header selectors.
func TestMatchContent(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.hdr.match_content("X-A", "eq", "one", "f")`, "boolean:true"},
		{`KSR.hdr.match_content("x-a", "eq", "ONE", "f")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "eq", "two", "f")`, "boolean:false"},
		{`KSR.hdr.match_content("X-A", "eq", "two", "l")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "eq", "two", "o")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "eq", "two", "a")`, "boolean:false"},
		{`KSR.hdr.match_content("X-A", "ne", "three", "a")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "sw", "tw", "o")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "in", "N", "f")`, "boolean:true"},
		{`KSR.hdr.match_content("X-A", "in", "zz", "o")`, "boolean:false"},
		{`KSR.hdr.match_content("X-A", "re", "o.e", "f")`, "boolean:false"},
		{`KSR.hdr.match_content("X-A", "eq", "one", "x")`, "boolean:false"},
		{`KSR.hdr.match_content("X-None", "ne", "x", "a")`, "boolean:false"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("OPTIONS", "sip:127.0.0.1", []string{"X-A: one", "X-A:  two "}, exprs...)
	for i, cs := range cases {
		if got[i] != cs.want {
			t.Errorf("%s = %s, want %s", cs.expr, got[i], cs.want)
		}
	}
}
