package corex_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestMoreCorex: files, xflags, raw sends and the source address, from a real route.
func TestMoreCorex(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("hello file"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.txt")
	p := enginetest.Start(t, "[modules.sl]\n[modules.corex]\n", enginetest.EvalScript)
	c, peer := p.UDPClient(t), p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.corex.file_read("` + in + `")`, "string:hello file"},
		{`KSR.corex.file_read("` + filepath.Join(dir, "nope") + `")`, "string:"},
		{`KSR.corex.file_write("` + out + `", "written")`, "number:1"},
		{`KSR.corex.file_write("` + filepath.Join(dir, "no/such/dir") + `", "x")`, "number:-1"},
		{`KSR.corex.has_user_agent()`, "number:1"},
		{`KSR.corex.is_faked_msg()`, "number:-1"},
		{`KSR.corex.isxflagset(5)`, "number:-1"},
		{`KSR.corex.setxflag(5)`, "number:1"},
		{`KSR.corex.isxflagset(5)`, "number:1"},
		{`KSR.corex.resetxflag(5) + KSR.corex.isxflagset(5)`, "number:0"},
		{`KSR.corex.setxflag(64)`, "number:-1"},
		{`KSR.corex.send_data("sip:` + peer.Addr.String() + `", "raw data")`, "number:1"},
		{`KSR.corex.sendx("sip:` + peer.Addr.String() + `", "udp:` + p.UDP.String() + `", "raw x")`, "number:1"},
		{`KSR.corex.sendx("sip:` + peer.Addr.String() + `", "udp:127.0.0.1:1", "x")`, "number:-1"},
		{`KSR.corex.set_source_address("garbage")`, "number:-1"},
		{`KSR.corex.set_send_socket("udp:` + p.UDP.String() + `")`, "number:1"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("OPTIONS", "sip:127.0.0.1", []string{"User-Agent: test"}, exprs...)
	for i := range got {
		if !strings.HasPrefix(got[i], cases[i].want) {
			t.Errorf("%s = %s, want %s", cases[i].expr, got[i], cases[i].want)
		}
	}
	for _, want := range []string{"raw data", "raw x"} {
		if got := string(peer.RecvRaw(2 * time.Second)); got != want {
			t.Errorf("peer got %q, want %q", got, want)
		}
	}
	// set_source_address: the message counts as received from the peer, so the reply goes there
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1", "X-Eval: KSR.corex.set_source_address(\"udp:"+peer.Addr.String()+"\")",
		"X-Eval: KSR.kx.get_srcport()"))
	r := string(peer.RecvRaw(2 * time.Second))
	if !strings.HasPrefix(r, "SIP/2.0 200 OK") || !strings.Contains(r, "X-Result: number:1\r\n") ||
		!strings.Contains(r, "X-Result: number:"+itoa(int(peer.Addr.Port()))) {
		t.Errorf("reply after set_source_address, at the new source:\n%s", r)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "written" {
		t.Errorf("file_write: %q, %v", b, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
