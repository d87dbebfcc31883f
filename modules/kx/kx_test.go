package kx_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const invite = "INVITE sip:bob@127.0.0.1:16160;transport=udp SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-150;rport\n" +
	"From: \"Alice A\" <sip:alice@example.org>;tag=ft150\n" +
	"To: Bob <sip:bob@example.net>\n" +
	"Call-ID: probe@test\n" +
	"CSeq: 17 INVITE\n" +
	"Contact: <sip:alice@127.0.0.1:40150>;expires=60\n" +
	"User-Agent: ProbeUA/1\n" +
	"Content-Type: application/sdp\n" +
	"Content-Length: 10\n\nv=0\nhello"

const options = "OPTIONS sips:127.0.0.1 SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-152;rport\n" +
	"From: <sip:127.0.0.1>;tag=ft152\n" +
	"To: <tel:+123>\n" +
	"Call-ID: probe3@test\n" +
	"CSeq: 17 OPTIONS\n" +
	"Content-Length: 0\n\n"

const reply = "SIP/2.0 202 Accepted Fine\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-3\n" +
	"From: <sip:alice@example.org>;tag=ft3\n" +
	"To: <sip:bob@example.net>;tag=uas3\n" +
	"Call-ID: kx3@test\n" +
	"CSeq: 1 MESSAGE\n" +
	"Content-Length: 0\n\n"

// TestGetters: the values Kamailio 5.6 kemix returned for the same messages (/tmp/ksrprobe runs), with the
// proxy's own socket in place of Kamailio's.
func TestGetters(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	inv := enginetest.Msg(t, p, invite)
	opt := enginetest.Msg(t, p, options)
	rpl := enginetest.Msg(t, p, reply)
	// Kamailio 5.6: "Contact: *" has no URI; several contacts in the first Contact header give the last
	// one written (its parser prepends to the list)
	star := enginetest.Msg(t, p, strings.Replace(options, "Content-Length: 0", "Contact: *\nExpires: 0\nContent-Length: 0", 1))
	many := enginetest.Msg(t, p, strings.Replace(options, "Content-Length: 0",
		"Contact: \"A\" <sip:a@127.0.0.1;ob>;expires=60, <sip:b@127.0.0.1>\nContact: <sip:c@127.0.0.1>\nContent-Length: 0", 1))
	rcvport := "number:" + strconv.Itoa(int(p.UDP.Port()))
	for _, c := range []struct {
		msg  string
		fn   string
		want string
	}{
		{"inv", "get_ruri", "string:sip:bob@127.0.0.1:16160;transport=udp"},
		{"inv", "get_ouri", "string:sip:bob@127.0.0.1:16160;transport=udp"},
		{"inv", "get_nhuri", "string:sip:bob@127.0.0.1:16160;transport=udp"},
		{"inv", "get_method", "string:INVITE"},
		{"inv", "get_srcip", "string:127.0.0.1"},
		{"inv", "get_srcport", "number:5099"},
		{"inv", "get_srcuri", "string:sip:127.0.0.1:5099"},
		{"inv", "get_srcaddr_sock", "string:udp:127.0.0.1:5099"},
		{"inv", "get_rcvip", "string:127.0.0.1"},
		{"inv", "get_rcvport", rcvport},
		{"inv", "get_rcvaddr_sock", "string:udp:" + p.UDP.String()},
		{"inv", "get_proto", "string:udp"},
		{"inv", "get_protoid", "number:1"},
		{"inv", "get_furi", "string:sip:alice@example.org"},
		{"inv", "get_fuser", "string:alice"},
		{"inv", "get_fhost", "string:example.org"},
		{"inv", "gete_fhost", "string:example.org"},
		{"inv", "get_turi", "string:sip:bob@example.net"},
		{"inv", "get_tuser", "string:bob"},
		{"inv", "get_thost", "string:example.net"},
		{"inv", "get_ruser", "string:bob"},
		{"inv", "get_rhost", "string:127.0.0.1"},
		{"inv", "get_ua", "string:ProbeUA/1"},
		{"inv", "gete_ua", "string:ProbeUA/1"},
		{"inv", "get_callid", "string:probe@test"},
		{"inv", "get_status", "number:-1"},
		{"inv", "gets_status", "nil:nil"},
		{"inv", "get_body", "string:v=0\r\nhello"},
		{"inv", "get_bodylen", "number:10"},
		{"inv", "get_msglen", "number:" + strconv.Itoa(len(inv.Buf))},
		{"inv", "get_msgtype", "number:1"},
		{"inv", "get_duri", "nil:nil"},
		{"inv", "get_cturi", "string:sip:alice@127.0.0.1:40150"},
		{"opt", "get_ruser", "nil:nil"},
		{"opt", "gete_ruser", "string:"},
		{"opt", "getw_ruser", "string:<null>"},
		{"opt", "get_rhost", "string:127.0.0.1"},
		{"opt", "get_thost", "nil:nil"},
		{"opt", "gete_thost", "string:"},
		{"opt", "getw_thost", "string:<null>"},
		{"opt", "get_tuser", "string:+123"},
		{"opt", "get_fuser", "nil:nil"},
		{"opt", "gete_fuser", "string:"},
		{"opt", "gete_fhost", "string:127.0.0.1"},
		{"opt", "get_cturi", "nil:nil"},
		{"opt", "gete_cturi", "string:"},
		{"opt", "get_body", "nil:nil"},
		{"opt", "gete_body", "string:"},
		{"opt", "getw_body", "string:<null>"},
		{"opt", "get_bodylen", "number:0"},
		{"opt", "get_ua", "nil:nil"},
		{"opt", "gete_ua", "string:"},
		{"opt", "getw_ua", "string:<null>"},
		{"opt", "gete_duri", "string:"},
		{"opt", "getw_duri", "string:<null>"},
		{"rpl", "get_status", "number:202"},
		{"rpl", "gets_status", "string:202"},
		{"rpl", "get_method", "string:MESSAGE"},
		{"rpl", "get_ruri", "nil:nil"},
		{"rpl", "get_ruser", "nil:nil"},
		{"rpl", "get_msgtype", "number:2"},
		{"star", "get_cturi", "nil:nil"},
		{"star", "gete_cturi", "string:"},
		{"star", "getw_cturi", "string:<null>"},
		{"many", "get_cturi", "string:sip:b@127.0.0.1"},
	} {
		msg := inv
		switch c.msg {
		case "opt":
			msg = opt
		case "rpl":
			msg = rpl
		case "star":
			msg = star
		case "many":
			msg = many
		}
		if got := enginetest.Call(t, p.Export(t, "kx", c.fn), msg); got != c.want {
			t.Errorf("%s kx.%s() = %q, want %q", c.msg, c.fn, got, c.want)
		}
	}
}

func TestDstURI(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, invite)
	m.DstURI = "sip:10.0.0.1:5080"
	for fn, want := range map[string]string{"get_duri": "string:sip:10.0.0.1:5080", "get_nhuri": "string:sip:10.0.0.1:5080",
		"get_ruri": "string:sip:bob@127.0.0.1:16160;transport=udp"} {
		if got := enginetest.Call(t, p.Export(t, "kx", fn), m); got != want {
			t.Errorf("kx.%s() = %q, want %q", fn, got, want)
		}
	}
}

func TestLuaTypes(t *testing.T) {
	p := enginetest.Start(t, enginetest.AllModulesConfig(), enginetest.EvalScript)
	for _, c := range []*enginetest.Client{p.UDPClient(t), p.TCPClient(t)} {
		proto := map[string]string{"UDP": "udp", "TCP": "tcp"}[c.Proto]
		cases := []struct{ expr, want string }{
			{`KSR.kx.get_ua()`, "nil:nil"},
			{`KSR.kx.gete_ua()`, "string:"},
			{`KSR.kx.get_status()`, "number:-1"},
			{`KSR.kx.get_srcport()`, "number:" + strconv.Itoa(int(c.Addr.Port()))},
			{`KSR.kx.get_srcip()`, "string:127.0.0.1"},
			{`KSR.kx.get_proto()`, "string:" + proto},
			{`KSR.kx.get_method()`, "string:MESSAGE"},
			{`KSR.kx.get_ruri()`, "string:sip:bob@127.0.0.1"},
			{`KSR.kx.get_fuser()`, "string:alice"},
			{`KSR.kx.get_tuser()`, "string:bob"},
			{`KSR.kx.get_body()`, "nil:nil"},
			{`KSR.kx.get_callid() == KSR.pv.get("$ci")`, "boolean:true"},
		}
		exprs := make([]string, len(cases))
		for i, cs := range cases {
			exprs[i] = cs.expr
		}
		got := c.Eval("MESSAGE", "sip:bob@127.0.0.1", nil, exprs...)
		for i, cs := range cases {
			if got[i] != cs.want {
				t.Errorf("%s: %s = %s, want %s", c.Proto, cs.expr, got[i], cs.want)
			}
		}
	}
}
