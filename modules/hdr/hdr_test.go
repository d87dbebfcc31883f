package hdr_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const msg = "MESSAGE sip:bob@127.0.0.1 SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-50;rport\n" +
	"v: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-50b\n" +
	"From: <sip:alice@127.0.0.1>;tag=ft50\n" +
	"To: <sip:bob@127.0.0.1>\n" +
	"Call-ID: hdr@test\n" +
	"CSeq: 1 MESSAGE\n" +
	"X-Multi: one\n" +
	"X-Multi: two, three\n" +
	"X-Empty:\n" +
	"Content-Length: 0\n\n"

// TestGetters: values and types as Kamailio 5.6 KSR.hdr returned them.
func TestGetters(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, msg)
	for _, c := range []struct {
		fn   string
		args []any
		want string
	}{
		{"get", []any{"Via"}, "string:SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-50;rport"},
		{"get", []any{"v"}, "string:SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-50;rport"},
		{"get", []any{"x-multi"}, "string:one"},
		{"get", []any{"X-Empty"}, "string:"},
		{"get", []any{"X-None"}, "nil:nil"},
		{"get", []any{""}, "nil:nil"},
		{"get", []any{"f"}, "string:<sip:alice@127.0.0.1>;tag=ft50"},
		{"gete", []any{"X-None"}, "string:"},
		{"getw", []any{"X-None"}, "string:<null>"},
		{"getw", []any{"Call-ID"}, "string:hdr@test"},
		{"get_idx", []any{"X-Multi", 0}, "string:one"},
		{"get_idx", []any{"X-Multi", 1}, "string:two, three"},
		{"get_idx", []any{"X-Multi", -1}, "string:two, three"},
		{"get_idx", []any{"X-Multi", -3}, "nil:nil"},
		{"get_idx", []any{"X-Multi", 5}, "nil:nil"},
		{"get_idx", []any{"via", 1}, "string:SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-50b"},
		{"gete_idx", []any{"X-Multi", 5}, "string:"},
		{"getw_idx", []any{"X-Multi", 5}, "string:<null>"},
		{"is_present", []any{"Via"}, "number:1"},
		{"is_present", []any{"X-Empty"}, "number:1"},
		{"is_present", []any{"X-None"}, "number:-1"},
		{"is_present", []any{""}, "number:-1"},
		{"remove", []any{""}, "number:-1"},
		{"remove", []any{"X-None"}, "number:1"},
		{"append_to_reply", []any{""}, "number:-1"},
		{"append", []any{""}, "number:1"},
	} {
		if got := enginetest.Call(t, p.Export(t, "hdr", c.fn), m, c.args...); got != c.want {
			t.Errorf("hdr.%s%v = %q, want %q", c.fn, c.args, got, c.want)
		}
	}
}

// TestEdits: changes apply to the outgoing copy only (Kamailio lumps); getters keep seeing the received
// message.
func TestEdits(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	for _, c := range []struct {
		name  string
		calls [][]any // fn, args...
		want  string  // the outgoing message
	}{
		{"append", [][]any{{"append", "X-A: 1\r\n"}, {"append", "X-B: 2"}},
			strings.Replace(enginetest.CRLF(msg), "Content-Length: 0\r\n", "Content-Length: 0\r\nX-A: 1\r\nX-B: 2\r\n", 1)},
		{"insert", [][]any{{"insert", "X-I: 1\r\n"}},
			strings.Replace(enginetest.CRLF(msg), "SIP/2.0\r\nVia:", "SIP/2.0\r\nX-I: 1\r\nVia:", 1)},
		{"remove all", [][]any{{"remove", "x-multi"}},
			strings.Replace(enginetest.CRLF(msg), "X-Multi: one\r\nX-Multi: two, three\r\n", "", 1)},
		{"remove compact", [][]any{{"remove", "Via"}},
			strings.Replace(strings.Replace(enginetest.CRLF(msg), "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-50;rport\r\n", "", 1),
				"v: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-50b\r\n", "", 1)},
		{"rmappend", [][]any{{"rmappend", "X-Empty", "X-Empty: 2\r\n"}},
			strings.Replace(strings.Replace(enginetest.CRLF(msg), "X-Empty:\r\n", "", 1), "Content-Length: 0\r\n", "Content-Length: 0\r\nX-Empty: 2\r\n", 1)},
		{"rminsert", [][]any{{"rminsert", "X-Empty", "X-E: 2\r\n"}},
			strings.Replace(strings.Replace(enginetest.CRLF(msg), "X-Empty:\r\n", "", 1), "SIP/2.0\r\nVia:", "SIP/2.0\r\nX-E: 2\r\nVia:", 1)},
		{"append_after", [][]any{{"append_after", "X-AA: 1\r\n", "From"}, {"append_after", "X-No: 1\r\n", "X-Nope"}},
			strings.Replace(enginetest.CRLF(msg), "tag=ft50\r\n", "tag=ft50\r\nX-AA: 1\r\n", 1)},
		{"insert_before", [][]any{{"insert_before", "X-IB: 1", "i"}, {"insert_before", "X-Nope: 1\r\n", "X-Nope"}},
			strings.Replace(enginetest.CRLF(msg), "Call-ID:", "X-IB: 1\r\nCall-ID:", 1)},
	} {
		m := enginetest.Msg(t, p, msg)
		for _, call := range c.calls {
			if got := enginetest.Call(t, p.Export(t, "hdr", call[0].(string)), m, call[1:]...); got != "number:1" {
				t.Errorf("%s: hdr.%s%v = %s, want number:1", c.name, call[0], call[1:], got)
			}
		}
		if got := string(m.Outgoing()); got != c.want {
			t.Errorf("%s: outgoing\n%q\nwant\n%q", c.name, got, c.want)
		}
		if got := enginetest.Call(t, p.Export(t, "hdr", "get"), m, "X-Multi"); got != "string:one" {
			t.Errorf("%s: hdr.get(X-Multi) after edits = %s; getters must see the received message", c.name, got)
		}
		if got := enginetest.Call(t, p.Export(t, "hdr", "is_present"), m, "X-A"); got != "number:-1" {
			t.Errorf("%s: hdr.is_present(X-A) = %s; added headers are not visible", c.name, got)
		}
	}
}

// TestAppendToReply: headers land after CSeq and before Content-Length of the stateless reply, in order.
func TestAppendToReply(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	KSR.hdr.append_to_reply("X-Foo: bar\r\n")
	KSR.hdr.append_to_reply("X-Two: 2")
	KSR.sl.sl_send_reply(404, "No registrar")
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("REGISTER", "sip:127.0.0.1"))
	raw := string(c.RecvRaw(2 * time.Second))
	if !strings.Contains(raw, "CSeq: 1 REGISTER\r\nX-Foo: bar\r\nX-Two: 2\r\n") || !strings.HasSuffix(raw, "Content-Length: 0\r\n\r\n") {
		t.Errorf("reply:\n%s", raw)
	}
}

// TestForwarded: hdr.append/insert/remove show up in the relayed request, hdr.get does not see them, and
// maxfwd decrements in place (which getters do see, as in Kamailio).
func TestForwarded(t *testing.T) {
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Close()
	p := enginetest.Start(t, "[modules.maxfwd]\n[modules.sl]\n", `
function ksr_request_route()
	local r = KSR.maxfwd.process_maxfwd(10)
	KSR.hdr.append("X-App: 1\r\n")
	KSR.hdr.insert("X-Ins: 2\r\n")
	KSR.hdr.remove("X-Rm")
	KSR.hdr.append("X-Seen: app=" .. tostring(KSR.hdr.get("X-App")) .. " rm=" .. tostring(KSR.hdr.get("X-Rm")) ..
		" present=" .. KSR.hdr.is_present("X-Ins") .. " mf=" .. tostring(KSR.hdr.get("Max-Forwards")) .. " ret=" .. r .. "\r\n")
	if KSR.forward() < 0 then KSR.sl.sl_send_reply(500, "forward failed") end
end`)
	c := p.UDPClient(t)
	ruri := "sip:bob@" + uas.LocalAddr().String()
	c.Send(c.Request("MESSAGE", ruri, "X-Rm: a", "X-Keep: k", "X-Rm: b"))
	buf := make([]byte, 65535)
	_ = uas.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := uas.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("nothing relayed: %v", err)
	}
	got := string(buf[:n])
	for _, want := range []string{
		"MESSAGE " + ruri + " SIP/2.0\r\nX-Ins: 2\r\nVia: SIP/2.0/UDP " + p.UDP.String() + ";branch=",
		"\r\nMax-Forwards: 69\r\n",
		"\r\nX-Keep: k\r\n",
		"Content-Length: 0\r\nX-App: 1\r\nX-Seen: app=nil rm=a present=-1 mf=69 ret=1\r\n\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("relayed request lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "X-Rm") {
		t.Errorf("X-Rm not removed:\n%s", got)
	}
	if strings.Count(got, "Via:") != 2 {
		t.Errorf("want the proxy's Via and the client's:\n%s", got)
	}
}

func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	c := p.UDPClient(t)
	got := c.Eval("OPTIONS", "sip:127.0.0.1", []string{"X-Empty:"},
		`KSR.hdr.is_present("Via")`, `KSR.hdr.is_present("X-None")`, `KSR.hdr.get("X-None")`, `KSR.hdr.get("X-Empty")`,
		`KSR.hdr.get("CSeq")`, `KSR.hdr.gete("X-None")`, `KSR.hdr.append("X-A: 1")`, `KSR.hdr.remove("X-Empty")`,
		`KSR.hdr.get("X-Empty")`, `KSR.hdr.get_idx("X-Eval", 0)`)
	want := []string{"number:1", "number:-1", "nil:nil", "string:", "string:1 OPTIONS", "string:", "number:1", "number:1",
		"string:", `string:KSR.hdr.is_present("Via")`}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d = %s, want %s", i, got[i], want[i])
		}
	}
}
