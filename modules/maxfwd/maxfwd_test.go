package maxfwd_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

func request(mf string) string {
	s := "MESSAGE sip:bob@127.0.0.1 SIP/2.0\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-30\n" +
		"From: <sip:alice@127.0.0.1>;tag=ft30\n" +
		"To: <sip:bob@127.0.0.1>\n" +
		"Call-ID: mf@test\n" +
		"CSeq: 1 MESSAGE\n"
	if mf != "" {
		s += "Max-Forwards: " + mf + "\n"
	}
	return s + "Content-Length: 0\n\n"
}

// TestProcess follows Kamailio 5.6 maxfwd (captured in /tmp/kamwire FINDINGS §3): return codes, the value
// written in place right-aligned in the received digits, and max_limit 70. (An unparsable value, -2 in
// Kamailio, never reaches the script: sipgo rejects the message first.)
func TestProcess(t *testing.T) {
	p := enginetest.Start(t, "[modules.maxfwd]\n", "function ksr_request_route() end")
	for _, c := range []struct {
		mf      string
		ret     string
		outMF   string // the Max-Forwards line sent on ("" = none)
		getAfer string // hdr.get("Max-Forwards") after: the received span rewritten, padding included
	}{
		{"", "number:2", "Max-Forwards: 10", "nil:nil"},
		{"0", "number:-1", "Max-Forwards: 0", "string:0"},
		{"1", "number:1", "Max-Forwards: 0", "string:0"},
		{"5", "number:1", "Max-Forwards: 4", "string:4"},
		{"10", "number:1", "Max-Forwards:  9", "string: 9"},
		{"11", "number:1", "Max-Forwards: 10", "string:10"},
		{"70", "number:1", "Max-Forwards: 69", "string:69"},
		{"71", "number:1", "Max-Forwards: 70", "string:70"},
		{"200", "number:1", "Max-Forwards:  70", "string: 70"},
		{"070", "number:1", "Max-Forwards:  69", "string: 69"},
	} {
		m := enginetest.Msg(t, p, request(c.mf))
		if got := enginetest.Call(t, p.Export(t, "maxfwd", "process_maxfwd"), m, 10); got != c.ret {
			t.Errorf("MF %q: process_maxfwd(10) = %s, want %s", c.mf, got, c.ret)
		}
		out := string(m.Outgoing())
		if !strings.Contains(out, "\r\n"+c.outMF+"\r\n") {
			t.Errorf("MF %q: outgoing lacks %q:\n%s", c.mf, c.outMF, out)
		}
		if c.mf == "" && !strings.HasPrefix(out, "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nMax-Forwards: 10\r\nVia:") {
			t.Errorf("a missing Max-Forwards goes before the first header:\n%s", out)
		}
		if got := enginetest.Call(t, p.Export(t, "hdr", "get"), m, "Max-Forwards"); got != c.getAfer {
			t.Errorf("MF %q: hdr.get after = %s, want %s", c.mf, got, c.getAfer)
		}
	}
}

func TestIsLess(t *testing.T) {
	p := enginetest.Start(t, "[modules.maxfwd]\n", "function ksr_request_route() end")
	for _, c := range []struct {
		mf   string
		max  int
		want string
	}{
		{"5", 10, "number:1"}, {"10", 10, "number:-1"}, {"70", 10, "number:-1"}, {"", 10, "number:-2"},
	} {
		m := enginetest.Msg(t, p, request(c.mf))
		if got := enginetest.Call(t, p.Export(t, "maxfwd", "is_maxfwd_lt"), m, c.max); got != c.want {
			t.Errorf("MF %q: is_maxfwd_lt(%d) = %s, want %s", c.mf, c.max, got, c.want)
		}
	}
}

// TestWire: a forwarded request carries the decremented value; Max-Forwards 0 is answered 483.
func TestWire(t *testing.T) {
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Close()
	p := enginetest.Start(t, "[modules.maxfwd]\n[modules.sl]\n", `
function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return
	end
	KSR.forward()
end`)
	c := p.UDPClient(t)
	ruri := "sip:bob@" + uas.LocalAddr().String()
	for _, c2 := range []struct{ in, out string }{{"70", "69"}, {"", "10"}, {"200", " 70"}} {
		req := c.Request("MESSAGE", ruri)
		switch c2.in {
		case "":
			req = strings.Replace(req, "Max-Forwards: 70\r\n", "", 1)
		default:
			req = strings.Replace(req, "Max-Forwards: 70\r\n", "Max-Forwards: "+c2.in+"\r\n", 1)
		}
		c.Send(req)
		buf := make([]byte, 65535)
		_ = uas.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := uas.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("MF %q: nothing relayed: %v", c2.in, err)
		}
		if got := string(buf[:n]); !strings.Contains(got, "\r\nMax-Forwards: "+c2.out+"\r\n") {
			t.Errorf("MF %q: relayed request lacks Max-Forwards: %s\n%s", c2.in, c2.out, got)
		}
	}
	c.Send(strings.Replace(c.Request("MESSAGE", ruri), "Max-Forwards: 70", "Max-Forwards: 0", 1))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 483 || r.Reason != "Too Many Hops" {
		t.Errorf("MF 0: got %d %s, want 483 Too Many Hops", r.StatusCode, r.Reason)
	}
}
