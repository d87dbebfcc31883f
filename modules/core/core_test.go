package core_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const register = "REGISTER sip:127.0.0.1 SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n" +
	"From: <sip:alice@127.0.0.1>;tag=ft1\n" +
	"To: <sip:alice@example.com>\n" +
	"Call-ID: core@test\n" +
	"CSeq: 1 REGISTER\n" +
	"Content-Length: 0\n\n"

func TestChecks(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, register)
	for _, c := range []struct {
		fn   string
		args []any
		want string
	}{
		{"is_method", []any{"REGISTER"}, "boolean:true"},
		{"is_method", []any{"register"}, "boolean:true"},
		{"is_method", []any{"INVITE"}, "boolean:false"},
		{"is_REGISTER", nil, "boolean:true"},
		{"is_INVITE", nil, "boolean:false"},
		{"is_method_in", []any{"RI"}, "boolean:true"},
		{"is_method_in", []any{"r"}, "boolean:true"},
		{"is_method_in", []any{"I"}, "boolean:false"},
		{"is_method_in", []any{""}, "boolean:false"},
		{"is_myself_srcip", nil, "boolean:true"},
		// Kamailio's check_self: a URI without a port matches any port we listen on
		{"is_myself_furi", nil, "boolean:true"},
		{"is_myself_turi", nil, "boolean:false"},
		{"is_myself", []any{"sip:" + p.UDP.String()}, "boolean:true"},
		{"is_myself", []any{"sip:127.0.0.1:1"}, "boolean:false"},
		{"is_myself", []any{"sip:bob@127.0.0.1;transport=tcp"}, "boolean:true"},
		{"is_myself", []any{"sip:" + p.UDP.String() + ";transport=tcp"}, "boolean:false"}, // UDP port, TCP socket elsewhere
		{"is_myself", []any{"sip:127.0.0.1;transport=tls"}, "boolean:false"},
		{"is_myself", []any{"sips:127.0.0.1"}, "boolean:true"},
		{"is_myself", []any{"127.0.0.1"}, "boolean:true"},     // a bare host
		{"is_myself", []any{p.UDP.String()}, "boolean:false"}, // not a host: Kamailio takes it whole
		{"is_myself", []any{"tel:+123"}, "boolean:false"},
		{"is_method", []any{"INVITE|REGISTER"}, "boolean:true"},
		{"is_method", []any{"INVITE|BYE"}, "boolean:false"},
		{"setflag", []any{31}, "boolean:true"},
		{"setflag", []any{32}, "boolean:false"}, // Kamailio's flags are 32 bits
		{"isflagset", []any{32}, "boolean:false"},
		{"setbflag", []any{32}, "boolean:false"},
		{"is_myself", []any{"sip:example.com"}, "boolean:false"},
		{"is_myself", []any{"garbage"}, "boolean:false"},
		{"isflagset", []any{1}, "boolean:false"},
		{"setflag", []any{1}, "boolean:true"},
		{"isflagset", []any{1}, "boolean:true"},
		{"resetflag", []any{1}, "boolean:true"},
		{"isflagset", []any{1}, "boolean:false"},
		{"setflag", []any{64}, "boolean:false"},
		{"isflagset", []any{-1}, "boolean:false"},
		{"setbflag", []any{3}, "boolean:true"},
		{"isbflagset", []any{3}, "boolean:true"},
		{"isdsturiset", nil, "boolean:false"},
		{"setdsturi", []any{"sip:10.0.0.1"}, "boolean:true"},
		{"isdsturiset", nil, "boolean:true"},
		{"resetdsturi", nil, "boolean:true"},
		{"isdsturiset", nil, "boolean:false"},
		{"force_rport", nil, "boolean:true"},
		{"setuser", []any{"bob"}, "boolean:true"},
		{"is_myself_ruri", nil, "boolean:true"},
		{"sethost", []any{"example.net"}, "boolean:true"},
		{"is_myself_ruri", nil, "boolean:false"},
		{"seturi", []any{"sip:" + p.UDP.String()}, "boolean:true"},
		{"is_myself_ruri", nil, "boolean:true"},
	} {
		if got := enginetest.Call(t, p.Export(t, "core", c.fn), m, c.args...); got != c.want {
			t.Errorf("KSR.%s%v = %s, want %s", c.fn, c.args, got, c.want)
		}
	}
	if !m.ForceRport {
		t.Error("force_rport did not mark the message")
	}
}

// TestMethodCase: Kamailio reads a method name case-insensitively into its method id, so is_INVITE and
// is_method_in match "invite" (as is_method does), while $rm keeps the text as received.
func TestMethodCase(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, strings.Replace(strings.Replace(register, "REGISTER sip:", "register sip:", 1), "1 REGISTER", "1 register", 1))
	for _, c := range []struct {
		fn   string
		args []any
		want string
	}{
		{"is_REGISTER", nil, "boolean:true"},
		{"is_method_in", []any{"R"}, "boolean:true"},
		{"is_method", []any{"REGISTER|INVITE"}, "boolean:true"},
		{"is_INVITE", nil, "boolean:false"},
	} {
		if got := enginetest.Call(t, p.Export(t, "core", c.fn), m, c.args...); got != c.want {
			t.Errorf("KSR.%s%v on \"register\" = %s, want %s", c.fn, c.args, got, c.want)
		}
	}
	if got := m.Method(); got != "register" {
		t.Errorf("method %q, want it as received", got)
	}
}

func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	c := p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.is_method("REGISTER")`, "boolean:true"},
		{`type(KSR.is_method("X"))`, "string:boolean"},
		{`KSR.is_REGISTER()`, "boolean:true"},
		{`KSR.is_INVITE()`, "boolean:false"},
		{`KSR.is_method_in("RI")`, "boolean:true"},
		{`KSR.is_method_in("I")`, "boolean:false"},
		{`KSR.is_myself_srcip()`, "boolean:true"},
		{`KSR.isflagset(1)`, "boolean:false"},
		{`KSR.setflag(1) and KSR.isflagset(1)`, "boolean:true"},
		{`KSR.pv.get("$mf")`, "number:2"},
		{`KSR.isdsturiset()`, "boolean:false"},
		{`KSR.setdsturi("sip:10.0.0.1")`, "boolean:true"},
		{`KSR.pv.get("$du")`, "string:sip:10.0.0.1"},
		{`KSR.info("hello")`, "nil:nil"},
		{`KSR.setuser("carol")`, "boolean:true"},
		{`KSR.pv.get("$ru")`, "string:sip:carol@127.0.0.1"},
		{`KSR.x.exit`, "function:"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("REGISTER", "sip:127.0.0.1", nil, exprs...)
	for i, cs := range cases {
		if !strings.HasPrefix(got[i], cs.want) {
			t.Errorf("%s = %s, want %s", cs.expr, got[i], cs.want)
		}
	}
}

// TestForwardURI: forward_uri relays to the given URI and returns 1; an unresolvable host returns -1.
func TestForwardURI(t *testing.T) {
	uas := enginetest.NewUDPClient(t, netipZero())
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	local r = KSR.forward_uri(KSR.hdr.get("X-Dst"))
	if r < 0 then KSR.sl.sl_send_reply(500, "ret " .. r) end
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("MESSAGE", "sip:bob@example.com", "X-Dst: sip:"+uas.Addr.String()))
	got := string(uas.RecvRaw(3 * time.Second))
	if !strings.HasPrefix(got, "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP "+p.UDP.String()+";branch=") {
		t.Errorf("relayed:\n%s", got)
	}
	c.Send(c.Request("MESSAGE", "sip:bob@example.com", "X-Dst: sip:host.invalid"))
	if r := c.RecvResponse(5 * time.Second); r.StatusCode != 500 || r.Reason != "ret -1" {
		t.Errorf("unresolvable: got %d %s", r.StatusCode, r.Reason)
	}
}

func netipZero() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:9") }

// BenchmarkIsMyselfRURI: is_myself_ruri runs on most requests (Kamailio's "is it for us" check).
func BenchmarkIsMyselfRURI(b *testing.B) {
	p := enginetest.Start(b, "", "function ksr_request_route() end")
	m := enginetest.Msg(b, p, strings.Replace(register, "REGISTER sip:127.0.0.1 ", "REGISTER sip:alice@127.0.0.1;transport=udp ", 1))
	fn := p.Export(b, "core", "is_myself_ruri").(func(*engine.Msg) bool)
	b.ReportAllocs()
	for b.Loop() {
		if !fn(m) {
			b.Fatal("not myself")
		}
	}
}
