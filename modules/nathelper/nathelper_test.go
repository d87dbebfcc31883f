package nathelper_test

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const cfg = "[modules.nathelper]\n[modules.sl]\n[modules.pv]\n"

// msgFrom parses raw SIP as if it came from src (no packet is sent: only the functions run).
func msgFrom(t *testing.T, p *enginetest.Proxy, raw, src string, proto engine.Proto) *engine.Msg {
	t.Helper()
	m, err := p.E.NewMsg([]byte(enginetest.CRLF(raw)), netip.MustParseAddrPort(src), proto)
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	return m
}

// request builds an INVITE with the given Via sent-by, Contact value and SDP connection address.
func request(via, contact, sdpC string) string {
	s := "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + via + ";branch=z9hG4bK-nh1\r\n" +
		"From: <sip:alice@example.com>;tag=f1\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: nh-test@x\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Max-Forwards: 70\r\n"
	if contact != "" {
		s += "Contact: " + contact + "\r\n"
	}
	if sdpC == "" {
		return s + "Content-Length: 0\r\n\r\n"
	}
	body := "v=0\r\no=- 1 1 IN IP4 " + sdpC + "\r\ns=-\r\nc=IN IP4 " + sdpC + "\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	return s + "Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestIsRFC1918(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "nathelper", "is_rfc1918")
	m := enginetest.Msg(t, p, request("127.0.0.1:5099", "", ""))
	for _, c := range []struct {
		addr, want string
	}{
		{"10.0.0.9", "number:1"}, {"10.255.255.255", "number:1"}, {"11.0.0.1", "number:-1"},
		{"172.16.0.1", "number:1"}, {"172.31.255.1", "number:1"}, {"172.32.0.1", "number:-1"},
		{"192.168.1.20", "number:1"}, {"192.169.0.1", "number:-1"},
		{"100.64.0.1", "number:1"}, {"100.127.255.254", "number:1"}, {"100.128.0.1", "number:-1"},
		{"192.0.0.5", "number:1"}, {"192.0.0.200", "number:1"}, // /29, and /24 with nat_addr_mode 1
		{"127.0.0.1", "number:-1"}, {"8.8.8.8", "number:-1"}, {"fd00::1", "number:-1"},
		{"example.com", "number:-1"}, {"", "number:-2"},
	} {
		if got := enginetest.Call(t, fn, m, c.addr); got != c.want {
			t.Errorf("is_rfc1918(%q) = %s, want %s", c.addr, got, c.want)
		}
	}
}

func TestNatAddrMode0(t *testing.T) {
	p := enginetest.Start(t, "[modules.nathelper]\nnat_addr_mode = 0\n", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, request("127.0.0.1:5099", "", ""))
	fn := p.Export(t, "nathelper", "is_rfc1918")
	if got := enginetest.Call(t, fn, m, "192.0.0.200"); got != "number:-1" {
		t.Errorf("nat_addr_mode 0: is_rfc1918(192.0.0.200) = %s, want -1", got)
	}
	if got := enginetest.Call(t, fn, m, "192.0.0.5"); got != "number:1" {
		t.Errorf("nat_addr_mode 0: is_rfc1918(192.0.0.5) = %s, want 1", got)
	}
}

// TestNatUACTest checks each flag bit, positive and negative, from Kamailio's list.
func TestNatUACTest(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "nathelper", "nat_uac_test")
	const src = "127.0.0.1:5099"
	clean := request("127.0.0.1:5099", "<sip:alice@127.0.0.1:5099>", "127.0.0.1")
	for _, c := range []struct {
		name  string
		flags int
		raw   string
		src   string
		du    string
		want  string
	}{
		{"1 contact private", 1, request(src, "<sip:alice@10.0.0.9:5060>", ""), src, "", "number:1"},
		{"1 contact cgnat", 1, request(src, "sip:alice@100.64.1.1", ""), src, "", "number:1"},
		{"1 contact public", 1, clean, src, "", "number:-1"},
		{"1 no contact", 1, request(src, "", ""), src, "", "number:-1"},
		{"2 via host differs", 2, request("10.0.0.9:5099", "", ""), src, "", "number:1"},
		{"2 via host name", 2, request("pc.example.com:5099", "", ""), src, "", "number:1"},
		{"2 via matches", 2, clean, src, "", "number:-1"},
		{"4 via private", 4, request("192.168.1.20:5099", "", ""), src, "", "number:1"},
		{"4 via public", 4, clean, src, "", "number:-1"},
		{"8 sdp private", 8, request(src, "", "192.168.1.20"), src, "", "number:1"},
		{"8 sdp public", 8, clean, src, "", "number:-1"},
		{"8 no sdp", 8, request(src, "", ""), src, "", "number:-1"},
		{"16 via port differs", 16, request("127.0.0.1:5070", "", ""), src, "", "number:1"},
		{"16 no via port, not 5060", 16, request("127.0.0.1", "", ""), src, "", "number:1"},
		{"16 no via port, 5060", 16, request("127.0.0.1", "", ""), "127.0.0.1:5060", "", "number:-1"},
		{"16 via port matches", 16, clean, src, "", "number:-1"},
		{"32 source private", 32, clean, "10.1.2.3:5099", "", "number:1"},
		{"32 source public", 32, clean, src, "", "number:-1"},
		{"64 websocket", 64, clean, src, "", "number:-1"},
		{"128 contact port differs", 128, request(src, "<sip:alice@127.0.0.1:5060>", ""), src, "", "number:1"},
		{"128 contact no port", 128, request(src, "<sip:alice@127.0.0.1>", ""), src, "", "number:1"},
		{"128 contact port matches", 128, clean, src, "", "number:-1"},
		{"256 sdp c differs", 256, request(src, "", "10.0.0.9"), src, "", "number:1"},
		{"256 sdp c matches", 256, clean, src, "", "number:-1"},
		{"256 no sdp", 256, request(src, "", ""), src, "", "number:-1"},
		{"512 du differs", 512, clean, src, "sip:127.0.0.1:5077", "number:1"},
		{"512 du same", 512, clean, src, "sip:127.0.0.1", "number:-1"},
		{"512 no du", 512, clean, src, "", "number:-1"},
		{"19 any", 19, request(src, "<sip:alice@10.0.0.9:5060>", ""), src, "", "number:1"},
		{"all on clean", 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256, clean, src, "", "number:-1"},
	} {
		m := msgFrom(t, p, c.raw, c.src, engine.UDP)
		m.DstURI = c.du
		if got := enginetest.Call(t, fn, m, c.flags); got != c.want {
			t.Errorf("%s: nat_uac_test(%d) = %s, want %s", c.name, c.flags, got, c.want)
		}
	}
}

// TestNatUACTestWire runs nat_uac_test from Lua on requests sent over UDP from 127.0.0.1.
func TestNatUACTestWire(t *testing.T) {
	p := enginetest.Start(t, cfg+"[modules.hdr]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	own := "Contact: <sip:alice@" + c.Addr.String() + ">"
	got := c.Eval("OPTIONS", "sip:x@127.0.0.1", []string{"Contact: <sip:alice@10.0.0.9:5060>"},
		"KSR.nathelper.nat_uac_test(1)", "KSR.nathelper.nat_uac_test(128)", "KSR.nathelper.nat_uac_test(2+16)")
	want := []string{"number:1", "number:1", "number:-1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("private Contact: got %v, want %v", got, want)
	}
	got = c.Eval("OPTIONS", "sip:x@127.0.0.1", []string{own}, "KSR.nathelper.nat_uac_test(1+2+4+16+32+128)")
	if got[0] != "number:-1" {
		t.Errorf("Contact naming the source: nat_uac_test = %s, want -1", got[0])
	}
}

// uas is a UDP socket on loopback standing for the next hop.
func uas(t *testing.T) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func recv(t *testing.T, u *net.UDPConn) string {
	t.Helper()
	buf := make([]byte, 65535)
	_ = u.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := u.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("nothing received: %v", err)
	}
	return string(buf[:n])
}

func header(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestFixNatedContactWire: the relayed request's Contact names where the packet came from.
func TestFixNatedContactWire(t *testing.T) {
	next := uas(t)
	p := enginetest.Start(t, cfg+"[modules.hdr]\n", `
function ksr_request_route()
	local r1 = KSR.nathelper.fix_nated_contact()
	local r2 = KSR.nathelper.fix_nated_contact()
	KSR.hdr.append("X-R: " .. r1 .. " " .. r2 .. "\r\n")
	KSR.forward()
end`)
	c := p.UDPClient(t)
	for _, tc := range []struct{ contact, want string }{
		{`"Alice" <sip:alice@10.0.0.9:5060;transport=udp>;expires=60`, `"Alice" <sip:alice@` + c.Addr.String() + `;transport=udp>;expires=60`},
		{`<sip:192.168.1.20;maddr=10.0.0.1;lr>`, `<sip:` + c.Addr.String() + `;lr>`},
		{`sip:alice@10.0.0.9`, `sip:alice@` + c.Addr.String()},
	} {
		c.Send(c.Request("MESSAGE", "sip:bob@"+next.LocalAddr().String(), "Contact: "+tc.contact))
		got := recv(t, next)
		if h := header(got, "Contact"); h != tc.want {
			t.Errorf("Contact %s: relayed %q, want %q", tc.contact, h, tc.want)
		}
		if h := header(got, "X-R"); h != "1 -1" {
			t.Errorf("fix_nated_contact twice returned %q, want \"1 -1\"", h)
		}
	}
}

// TestAliasRoundTrip: add_contact_alias on the way out, handle_ruri_alias on the request that targets the
// aliased Contact: it reaches the client's real address (127.0.0.1:P), not the private one in the URI.
func TestAliasRoundTrip(t *testing.T) {
	next := uas(t)
	p := enginetest.Start(t, cfg+"[modules.hdr]\n", `
function ksr_request_route()
	if KSR.is_method("MESSAGE") then
		KSR.hdr.append("X-R: " .. KSR.nathelper.add_contact_alias() .. "\r\n")
	else
		KSR.hdr.append("X-R: " .. KSR.nathelper.handle_ruri_alias() .. "\r\n")
	end
	KSR.forward()
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("MESSAGE", "sip:bob@"+next.LocalAddr().String(), "Contact: <sip:alice@10.0.0.9:5060>;expires=60"))
	got := recv(t, next)
	alias := c.Addr.Addr().String() + "~" + strconv.Itoa(int(c.Addr.Port())) + "~1"
	wantContact := "<sip:alice@10.0.0.9:5060;alias=" + alias + ">;expires=60"
	if h := header(got, "Contact"); h != wantContact {
		t.Fatalf("relayed Contact %q, want %q", h, wantContact)
	}
	if h := header(got, "X-R"); h != "1" {
		t.Errorf("add_contact_alias = %s, want 1", h)
	}
	// the far end answers the dialog: a request to the aliased Contact, sent to the proxy
	far := enginetest.NewUDPClient(t, p.UDP)
	far.Send("BYE sip:alice@10.0.0.9:5060;alias=" + alias + ";ob SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + far.Addr.String() + ";branch=z9hG4bK-bye1\n" +
		"From: <sip:bob@example.com>;tag=b1\nTo: <sip:alice@example.com>;tag=a1\nCall-ID: alias@x\nCSeq: 2 BYE\n" +
		"Max-Forwards: 70\nContent-Length: 0\n\n")
	bye := string(c.RecvRaw(3 * time.Second))
	if !strings.HasPrefix(bye, "BYE sip:alice@10.0.0.9:5060;ob SIP/2.0\r\n") {
		t.Errorf("BYE reached the client without the alias removed:\n%s", bye)
	}
	if h := header(bye, "X-R"); h != "1" {
		t.Errorf("handle_ruri_alias = %s, want 1", h)
	}
}

func TestAddContactAliasCodes(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	add := p.Export(t, "nathelper", "add_contact_alias")
	addr := p.Export(t, "nathelper", "add_contact_alias_addr")
	const src = "127.0.0.1:5099"
	for _, c := range []struct {
		name, contact, want, out string
		proto                    engine.Proto
	}{
		{"source already", "<sip:alice@127.0.0.1:5099>", "number:2", "Contact: <sip:alice@127.0.0.1:5099>", engine.UDP},
		{"no contact", "", "number:2", "", engine.UDP},
		{"no brackets", "sip:alice@10.0.0.9;expires=10", "number:1", "Contact: <sip:alice@10.0.0.9;alias=127.0.0.1~5099~1>;expires=10", engine.UDP},
		{"tcp", "<sip:alice@127.0.0.1:5099>", "number:1", "Contact: <sip:alice@127.0.0.1:5099;alias=127.0.0.1~5099~2>", engine.TCP},
		{"star", "*", "number:-1", "Contact: *", engine.UDP},
	} {
		m := msgFrom(t, p, request(src, c.contact, ""), src, c.proto)
		if got := enginetest.Call(t, add, m); got != c.want {
			t.Errorf("%s: add_contact_alias() = %s, want %s", c.name, got, c.want)
		}
		if c.out != "" && !strings.Contains(string(m.Outgoing()), "\r\n"+c.out+"\r\n") {
			t.Errorf("%s: outgoing lacks %q:\n%s", c.name, c.out, m.Outgoing())
		}
	}
	m := msgFrom(t, p, request(src, "<sip:alice@10.0.0.9>", ""), src, engine.UDP)
	if got := enginetest.Call(t, add, m); got != "number:1" {
		t.Fatalf("add_contact_alias = %s", got)
	}
	if got := enginetest.Call(t, add, m); got != "number:-1" {
		t.Errorf("a second add_contact_alias = %s, want -1", got)
	}
	for _, c := range []struct{ ip, port, proto, want, param string }{
		{"127.0.0.1", "5088", "tcp", "number:1", ";alias=127.0.0.1~5088~2>"},
		{"127.0.0.1", "5088", "UDP", "number:1", ";alias=127.0.0.1~5088~1>"},
		{"not-an-ip", "5088", "udp", "number:-1", ""},
		{"127.0.0.1", "0", "udp", "number:-1", ""},
		{"127.0.0.1", "70000", "udp", "number:-1", ""},
		{"127.0.0.1", "5088", "carrier-pigeon", "number:-1", ""},
	} {
		m := msgFrom(t, p, request(src, "<sip:alice@10.0.0.9>", ""), src, engine.UDP)
		if got := enginetest.Call(t, addr, m, c.ip, c.port, c.proto); got != c.want {
			t.Errorf("add_contact_alias(%s, %s, %s) = %s, want %s", c.ip, c.port, c.proto, got, c.want)
		}
		if c.param != "" && !strings.Contains(string(m.Outgoing()), "<sip:alice@10.0.0.9"+c.param) {
			t.Errorf("add_contact_alias(%s, %s, %s): outgoing lacks %q:\n%s", c.ip, c.port, c.proto, c.param, m.Outgoing())
		}
	}
}

func TestHandleRURIAlias(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	h := p.Export(t, "nathelper", "handle_ruri_alias")
	hm := p.Export(t, "nathelper", "handle_ruri_alias_mode")
	for _, c := range []struct {
		ruri       string
		mode       int // -1: handle_ruri_alias()
		want       string
		du, newURI string
	}{
		{"sip:a@10.0.0.9:5060;alias=127.0.0.1~5077~1", -1, "number:1", "sip:127.0.0.1:5077", "sip:a@10.0.0.9:5060"},
		{"sip:a@10.0.0.9;x=1;alias=127.0.0.1~5077~2;y=2", -1, "number:1", "sip:127.0.0.1:5077;transport=tcp", "sip:a@10.0.0.9;x=1;y=2"},
		{"sip:a@10.0.0.9;alias=127.0.0.1~5077~1;alias=127.0.0.2~5078~1", 0, "number:1", "sip:127.0.0.1:5077", "sip:a@10.0.0.9;alias=127.0.0.2~5078~1"},
		{"sip:a@10.0.0.9;alias=127.0.0.1~5077~1;alias=127.0.0.2~5078~1", 1, "number:1", "sip:127.0.0.2:5078", "sip:a@10.0.0.9;alias=127.0.0.1~5077~1"},
		{"sip:a@10.0.0.9;alias=[::1]~5077~1", -1, "number:1", "sip:[::1]:5077", "sip:a@10.0.0.9"},
		{"sip:a@10.0.0.9;lr", -1, "number:2", "", ""},
		{"sip:a@10.0.0.9", -1, "number:2", "", ""},
		{"sip:a@10.0.0.9;alias=127.0.0.1~5077", -1, "number:-1", "", ""},
		{"sip:a@10.0.0.9;alias=evil.example.com~5077~1", -1, "number:-1", "", ""},
		{"sip:a@10.0.0.9;alias=127.0.0.1~5077~9", -1, "number:-1", "", ""},
	} {
		raw := strings.Replace(request("127.0.0.1:5099", "", ""), "INVITE sip:bob@127.0.0.1 ", "INVITE "+c.ruri+" ", 1)
		m := enginetest.Msg(t, p, raw)
		var got string
		if c.mode < 0 {
			got = enginetest.Call(t, h, m)
		} else {
			got = enginetest.Call(t, hm, m, c.mode)
		}
		if got != c.want || m.DstURI != c.du || m.NewURI != c.newURI {
			t.Errorf("%s (mode %d): got %s du=%q ru=%q, want %s du=%q ru=%q", c.ruri, c.mode, got, m.DstURI, m.NewURI, c.want, c.du, c.newURI)
		}
	}
}

func TestSetContactAliasAndPV(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	set := p.Export(t, "nathelper", "set_contact_alias")
	trim := p.Export(t, "nathelper", "set_contact_alias_trim")
	topv := p.Export(t, "nathelper", "set_alias_to_pv")
	const src = "127.0.0.1:5099"
	m := msgFrom(t, p, request(src, "<sip:alice@10.0.0.9;ob>", ""), src, engine.UDP)
	if got := enginetest.Call(t, set, m); got != "number:1" {
		t.Errorf("set_contact_alias = %s", got)
	}
	if !strings.Contains(string(m.Outgoing()), "Contact: <sip:alice@10.0.0.9;ob;alias=127.0.0.1~5099~1>\r\n") {
		t.Errorf("set_contact_alias outgoing:\n%s", m.Outgoing())
	}
	if got := enginetest.Call(t, set, m); got != "number:-1" {
		t.Errorf("a second set_contact_alias = %s, want -1", got)
	}
	m = msgFrom(t, p, request(src, "<sip:alice@10.0.0.9;alias=1.2.3.4~5~1>", ""), src, engine.UDP)
	if got := enginetest.Call(t, trim, m); got != "number:1" {
		t.Errorf("set_contact_alias_trim = %s", got)
	}
	if !strings.Contains(string(m.Outgoing()), "Contact: <sip:alice@10.0.0.9;alias=127.0.0.1~5099~1>\r\n") {
		t.Errorf("set_contact_alias_trim outgoing:\n%s", m.Outgoing())
	}
	// set_alias_to_pv reads the received Contact
	m = msgFrom(t, p, request(src, "<sip:alice@10.0.0.9;alias=127.0.0.1~5077~2>", ""), src, engine.UDP)
	if got := enginetest.Call(t, topv, m, "$avp(au)"); got != "number:1" {
		t.Fatalf("set_alias_to_pv = %s", got)
	}
	if v := m.AVPs["au"]; len(v) != 1 || v[0].S != "sip:127.0.0.1:5077;transport=tcp" {
		t.Errorf("$avp(au) = %v, want sip:127.0.0.1:5077;transport=tcp", v)
	}
	if got := enginetest.Call(t, topv, m, "$du"); got != "number:1" || m.DstURI != "sip:127.0.0.1:5077;transport=tcp" {
		t.Errorf("set_alias_to_pv($du) = %s, $du = %q", got, m.DstURI)
	}
	for _, bad := range []struct{ contact, spec string }{
		{"<sip:alice@10.0.0.9>", "$avp(au)"},
		{"<sip:alice@10.0.0.9;alias=127.0.0.1~5077~2>", "$nosuchpv(x)"},
		{"<sip:alice@10.0.0.9;alias=127.0.0.1~5077~2>", "avp"},
	} {
		m = msgFrom(t, p, request(src, bad.contact, ""), src, engine.UDP)
		if got := enginetest.Call(t, topv, m, bad.spec); got != "number:-1" {
			t.Errorf("set_alias_to_pv(%q) with %s = %s, want -1", bad.spec, bad.contact, got)
		}
	}
}

func TestAddRcvParam(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "nathelper", "add_rcv_param")
	const src = "127.0.0.1:5099"
	raw := strings.Replace(request(src, "<sip:a@10.0.0.9>;expires=60, <sip:b@10.0.0.10>", ""),
		"Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nContact: <sip:c@10.0.0.11>\r\n", 1)
	m := msgFrom(t, p, raw, src, engine.UDP)
	if got := enginetest.Call(t, fn, m, 0); got != "number:1" {
		t.Fatalf("add_rcv_param(0) = %s", got)
	}
	out := string(m.Outgoing())
	for _, want := range []string{
		`Contact: <sip:c@10.0.0.11>;received="sip:127.0.0.1:5099"` + "\r\n",
		`Contact: <sip:a@10.0.0.9>;expires=60;received="sip:127.0.0.1:5099", <sip:b@10.0.0.10>;received="sip:127.0.0.1:5099"` + "\r\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("add_rcv_param(0): outgoing lacks %q:\n%s", want, out)
		}
	}
	m = msgFrom(t, p, request(src, "<sip:a@10.0.0.9>;expires=60", ""), src, engine.UDP)
	if got := enginetest.Call(t, fn, m, 1); got != "number:1" {
		t.Fatalf("add_rcv_param(1) = %s", got)
	}
	if want := "Contact: <sip:a@10.0.0.9;received=sip:127.0.0.1:5099>;expires=60\r\n"; !strings.Contains(string(m.Outgoing()), want) {
		t.Errorf("add_rcv_param(1): outgoing lacks %q:\n%s", want, m.Outgoing())
	}
	m = msgFrom(t, p, request(src, "<sip:a@10.0.0.9>", ""), src, engine.TCP)
	if got := enginetest.Call(t, fn, m, 1); got != "number:-1" {
		t.Errorf("add_rcv_param(1) over TCP = %s, want -1 (URI parameter is UDP only)", got)
	}
	m = msgFrom(t, p, request(src, "", ""), src, engine.UDP)
	if got := enginetest.Call(t, fn, m, 0); got != "number:-1" {
		t.Errorf("add_rcv_param without Contact = %s, want -1", got)
	}
}

func TestFixNatedRegister(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "nathelper", "fix_nated_register")
	for _, c := range []struct {
		src   string
		proto engine.Proto
		want  string
	}{
		{"127.0.0.1:5099", engine.UDP, "sip:127.0.0.1:5099"},
		{"127.0.0.1:40000", engine.TCP, "sip:127.0.0.1:40000;transport=tcp"},
		{"[::1]:5099", engine.UDP, "sip:[::1]:5099"},
	} {
		m := msgFrom(t, p, request("127.0.0.1", "<sip:a@10.0.0.9>", ""), c.src, c.proto)
		if got := enginetest.Call(t, fn, m); got != "number:1" {
			t.Errorf("fix_nated_register = %s", got)
		}
		if v := m.AVPs["RECEIVED"]; len(v) != 1 || v[0].S != c.want {
			t.Errorf("from %s/%s: $avp(RECEIVED) = %v, want %s", c.src, c.proto, v, c.want)
		}
	}
	// the name can be written as Kamailio's pseudo-variable, and "" disables it
	p2 := enginetest.Start(t, "[modules.nathelper]\nreceived_avp = \"$avp(rcv)\"\n", "function ksr_request_route() end")
	m := msgFrom(t, p2, request("127.0.0.1", "", ""), "127.0.0.1:5099", engine.UDP)
	enginetest.Call(t, p2.Export(t, "nathelper", "fix_nated_register"), m)
	if v := m.AVPs["rcv"]; len(v) != 1 || v[0].S != "sip:127.0.0.1:5099" {
		t.Errorf("received_avp $avp(rcv): got %v", m.AVPs)
	}
}

func TestFixNatedSDP(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "nathelper", "fix_nated_sdp")
	fnIP := p.Export(t, "nathelper", "fix_nated_sdp_ip")
	const src = "127.0.0.1:5099"
	body := func(out string) (string, string) {
		head, b, _ := strings.Cut(out, "\r\n\r\n")
		return header(head+"\r\n\r\n", "Content-Length"), b
	}
	m := msgFrom(t, p, request(src, "", "10.0.0.9"), src, engine.UDP)
	if got := enginetest.Call(t, fn, m, 2); got != "number:1" {
		t.Fatalf("fix_nated_sdp(2) = %s", got)
	}
	cl, b := body(string(m.Outgoing()))
	want := "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=oldmediaip:10.0.0.9\r\n"
	if b != want || cl != strconv.Itoa(len(want)) {
		t.Errorf("fix_nated_sdp(2): Content-Length %s, body\n%q\nwant %d\n%q", cl, b, len(want), want)
	}
	m = msgFrom(t, p, request(src, "", "10.0.0.9"), src, engine.UDP)
	if got := enginetest.Call(t, fnIP, m, 1|8, "127.0.0.2"); got != "number:1" {
		t.Fatalf("fix_nated_sdp_ip(9) = %s", got)
	}
	cl, b = body(string(m.Outgoing()))
	want = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=direction:active\r\na=oldmediaip:10.0.0.9\r\n"
	if b != want || cl != strconv.Itoa(len(want)) {
		t.Errorf("fix_nated_sdp_ip(9): Content-Length %s, body\n%q\nwant %d\n%q", cl, b, len(want), want)
	}
	for _, c := range []struct {
		name  string
		raw   string
		flags int
		want  string
	}{
		{"already the source", request(src, "", "127.0.0.1"), 2, "number:2"},
		{"null address", request(src, "", "0.0.0.0"), 2, "number:2"},
		{"no body", request(src, "", ""), 2, "number:-1"},
		{"nortpproxy only", request(src, "", "10.0.0.9"), 4, "number:2"},
	} {
		m := msgFrom(t, p, c.raw, src, engine.UDP)
		if got := enginetest.Call(t, fn, m, c.flags); got != c.want {
			t.Errorf("%s: fix_nated_sdp(%d) = %s, want %s", c.name, c.flags, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"natping_interval = -1", "natping_interval"},
		{"sipping_bflag = 64", "sipping_bflag"},
		{"natping_interval = 10\nsipping_bflag = 3", "sipping_from"},
		{"sipping_from = \"pinger\"", "sipping_from"},
		{"received_avp = \"$var(x)\"", "received_avp"},
		{"alias_name = \"a;b\"", "alias_name"},
		{"nat_addr_mode = 2", "nat_addr_mode"},
		{"force_socket = \"tcp:127.0.0.1:5060\"", "force_socket"},
		{"natping_interval = 10\nkeepalive_timeout = 5", "keepalive_timeout"},
	} {
		dir := t.TempDir()
		path := dir + "/config.toml"
		writeFile(t, path, "[lua]\nscript = \"s.lua\"\n[modules.nathelper]\n"+c.toml+"\n")
		writeFile(t, dir+"/s.lua", "function ksr_request_route() end")
		_, err := engine.LoadConfigFile(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one naming %s", c.toml, err, c.want)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrors(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"[modules.nathelper]\nnatping_interval = 5\n", "usrloc"},
		{"[modules.usrloc]\n[modules.nathelper]\nnatping_interval = 5\nping_nated_only = true\n", "nat_bflag"},
	} {
		dir := t.TempDir()
		writeFile(t, dir+"/config.toml", "[lua]\nscript = \"s.lua\"\n"+c.toml)
		writeFile(t, dir+"/s.lua", "function ksr_request_route() end")
		cfg, err := engine.LoadConfigFile(dir + "/config.toml")
		if err != nil {
			t.Fatalf("%q: %v", c.toml, err)
		}
		compile := func(*engine.Config) (engine.Script, error) { return nil, nil }
		if _, err := engine.New(cfg, compile, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: engine.New error %v, want one naming %s", c.toml, err, c.want)
		}
	}
}

// TestAllFromLua calls every KSR.nathelper function from Lua: each is reachable with Kamailio's argument
// types and returns a number.
func TestAllFromLua(t *testing.T) {
	p := enginetest.Start(t, cfg+"[modules.hdr]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	calls := []string{
		"KSR.nathelper.nat_uac_test(19)", "KSR.nathelper.is_rfc1918('10.0.0.1')", "KSR.nathelper.fix_nated_register()",
		"KSR.nathelper.add_rcv_param(0)", "KSR.nathelper.add_contact_alias_addr('127.0.0.1', '5060', 'udp')",
		"KSR.nathelper.add_contact_alias()", "KSR.nathelper.set_contact_alias()", "KSR.nathelper.set_contact_alias_trim()",
		"KSR.nathelper.fix_nated_contact()", "KSR.nathelper.handle_ruri_alias()", "KSR.nathelper.handle_ruri_alias_mode(1)",
		"KSR.nathelper.set_alias_to_pv('$var(a)')", "KSR.nathelper.fix_nated_sdp(3)", "KSR.nathelper.fix_nated_sdp_ip(2, '127.0.0.1')",
	}
	got := c.Eval("OPTIONS", "sip:x@127.0.0.1;alias=127.0.0.1~5060~1", []string{"Contact: <sip:a@10.0.0.9;alias=127.0.0.1~5060~1>"}, calls...)
	want := []string{"number:1", "number:1", "number:1", "number:1", "number:1", "number:-1", "number:-1", "number:-1",
		"number:-1", "number:1", "number:2", "number:1", "number:-1", "number:-1"}
	for i := range calls {
		if got[i] != want[i] {
			t.Errorf("%s = %s, want %s", calls[i], got[i], want[i])
		}
	}
}
