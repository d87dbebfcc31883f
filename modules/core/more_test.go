package core_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestMoreCore: the transport, address, flag and route functions of Kamailio's core KEMI, evaluated in a
// real route over UDP and TCP (Lua types as app_lua returns them).
func TestMoreCore(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", enginetest.EvalScript+`
function my_route() KSR.setflag(7) end
`)
	u := p.UDPClient(t)
	port := u.Addr.Port()
	cases := []struct{ expr, want string }{
		{`KSR.is_UDP()`, "boolean:true"},
		{`KSR.is_TCP()`, "boolean:false"},
		{`KSR.is_TLS() or KSR.is_WS() or KSR.is_WSS() or KSR.is_WSX() or KSR.is_SCTP()`, "boolean:false"},
		{`KSR.is_proto("tu")`, "boolean:true"},
		{`KSR.is_proto("T")`, "boolean:false"},
		{`KSR.is_IPv4()`, "boolean:true"},
		{`KSR.is_IPv6()`, "boolean:false"},
		{`KSR.is_src_port(` + itoa(int(port)) + `)`, "boolean:true"},
		{`KSR.is_src_port(1)`, "boolean:false"},
		{`KSR.is_dst_port(` + itoa(int(p.UDP.Port())) + `)`, "boolean:true"},
		{`KSR.is_dst_port(5060)`, "boolean:false"},
		{`KSR.is_GET() or KSR.is_POST() or KSR.is_PUT() or KSR.is_DELETE()`, "boolean:false"},
		{`KSR.is_myself_duri()`, "boolean:false"},
		{`KSR.is_myself_nhuri()`, "boolean:true"},
		{`KSR.setdsturi("sip:192.0.2.1:5080;transport=tcp") and KSR.is_myself_nhuri()`, "boolean:false"},
		{`KSR.is_myself_duri()`, "boolean:false"},
		{`KSR.to_TCP()`, "boolean:true"},
		{`KSR.to_UDP()`, "boolean:false"},
		{`KSR.to_IPv4()`, "boolean:true"},
		{`KSR.setdsturi("sip:[2001:db8::1]") and KSR.to_IPv6()`, "boolean:true"},
		{`KSR.to_TCP()`, "boolean:false"},
		{`KSR.is_myself_suri()`, "boolean:false"},
		{`KSR.issflagset(3)`, "boolean:false"},
		{`KSR.setsflag(3) and KSR.issflagset(3)`, "boolean:true"},
		{`KSR.resetsflag(3) and KSR.issflagset(3)`, "boolean:false"},
		{`KSR.setsflag(3) and KSR.pv.get("$sf")`, "number:8"},
		{`KSR.resetsflag(3) and KSR.pv.get("$sF")`, "string:00000000"},
		{`KSR.setsflag(64)`, "boolean:false"},
		{`KSR.setbiflag(4, 0) and KSR.isbflagset(4)`, "boolean:true"},
		{`KSR.isbiflagset(4, 0)`, "boolean:true"},
		{`KSR.resetbiflag(4, 0) or KSR.isbflagset(4)`, "boolean:true"},
		{`KSR.isbflagset(4)`, "boolean:false"},
		{`KSR.setbiflag(4, 1)`, "boolean:false"},
		{`KSR.set_forward_close() and KSR.set_forward_no_connect() and KSR.set_reply_close() and KSR.add_local_rport()`, "boolean:true"},
		{`KSR.set_advertised_address("sip.example.org")`, "number:1"},
		{`KSR.set_advertised_port("5080")`, "number:1"},
		{`KSR.set_advertised_port("abc")`, "number:-1"},
		{`KSR.add_tcp_alias(5070)`, "number:1"},
		{`KSR.add_tcp_alias_via()`, "number:1"},
		{`KSR.get_debug()`, "number:2"},
		{`KSR.route("my_route")`, "number:1"},
		{`KSR.isflagset(7)`, "boolean:true"},
		{`KSR.route("no_such_route")`, "number:-1"},
		{`KSR.x.modf("is_method", "OPTIONS")`, "number:1"},
		{`KSR.x.modf("is_method", "INVITE")`, "number:-1"},
		{`KSR.x.modf("setflag", "9") == 1 and KSR.isflagset(9)`, "boolean:true"},
		{`KSR.x.modf("get_debug")`, "number:2"},
		{`KSR.x.modf("no_such_function", "x")`, "number:-1"},
		{`KSR.x.probe()`, "nil:nil"},
	}
	exprs := make([]string, len(cases))
	for i, c := range cases {
		exprs[i] = c.expr
	}
	got := u.Eval("OPTIONS", "sip:"+p.UDP.String(), nil, exprs...)
	for i, c := range cases {
		if !strings.HasPrefix(got[i], c.want) {
			t.Errorf("%s = %s, want %s", c.expr, got[i], c.want)
		}
	}

	tc := p.TCPClient(t)
	got = tc.Eval("OPTIONS", "sip:"+p.UDP.String(), nil, `KSR.is_TCP()`, `KSR.is_UDP()`, `KSR.is_proto("t")`,
		`KSR.add_tcp_alias(5070)`)
	for i, want := range []string{"boolean:true", "boolean:false", "boolean:true", "number:1"} {
		if got[i] != want {
			t.Errorf("over TCP, expression %d = %s, want %s", i, got[i], want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestForwardFlags: add_local_rport puts ;rport in the proxy's Via (stateless forward and t_relay);
// set_forward_no_connect makes a stateless forward to a TCP address without a connection fail at once (-1)
// instead of opening one.
func TestForwardFlags(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n", `
function ksr_request_route()
	if KSR.is_ACK() then return end
	if KSR.hdr.is_present("X-Rport") > 0 then KSR.add_local_rport() end
	if KSR.hdr.is_present("X-NoConn") > 0 then KSR.set_forward_no_connect() end
	local rc
	if KSR.hdr.is_present("X-Stateful") > 0 then rc = KSR.tm.t_relay() else rc = KSR.forward_uri(KSR.hdr.get("X-Dst")) end
	if rc < 0 then KSR.sl.sl_send_reply(500, "rc " .. rc) end
end`)
	c, uas := p.UDPClient(t), p.UDPClient(t)
	topVia := func(raw []byte) string {
		for _, l := range strings.Split(string(raw), "\r\n") {
			if strings.HasPrefix(l, "Via: ") {
				return l
			}
		}
		return ""
	}
	for _, extra := range [][]string{{"X-Dst: sip:" + uas.Addr.String()}, {"X-Stateful: 1"}} {
		c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), append(extra, "X-Rport: 1")...))
		if v := topVia(uas.RecvRaw(2 * time.Second)); !strings.HasSuffix(v, ";rport") {
			t.Errorf("%v: proxy Via %q, want ;rport", extra, v)
		}
		c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String(), extra...))
		if v := topVia(uas.RecvRaw(2 * time.Second)); strings.Contains(v, "rport") {
			t.Errorf("%v: proxy Via %q without add_local_rport", extra, v)
		}
	}
	// a TCP server the proxy has no connection to yet
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 4096)
		n, _ := conn.Read(b)
		got <- string(b[:n])
	}()
	dst := "X-Dst: sip:" + ln.Addr().String() + ";transport=tcp"
	c.Send(c.Request("MESSAGE", "sip:bob@example.com", dst, "X-NoConn: 1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 500 || r.Reason != "rc -1" {
		t.Errorf("no-connect forward: %d %s, want 500 rc -1", r.StatusCode, r.Reason)
	}
	c.Send(c.Request("MESSAGE", "sip:bob@example.com", dst))
	select {
	case m := <-got:
		if !strings.HasPrefix(m, "MESSAGE sip:bob@example.com SIP/2.0") {
			t.Errorf("the TCP server got %q", m)
		}
	case <-time.After(3 * time.Second):
		t.Error("a forward allowed to connect did not reach the TCP server")
	}
}
