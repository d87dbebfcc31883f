package nathelper_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/usrloc"
)

// registrarScript detects NAT, hands the source to the registrar (fix_nated_register) and flags the contact
// as NATed, as Kamailio's default configuration does; other requests go to the registered contact.
const registrarScript = `
function ksr_request_route()
	KSR.force_rport()
	if KSR.is_REGISTER() then
		if KSR.nathelper.nat_uac_test(19) > 0 then
			KSR.nathelper.fix_nated_register()
			KSR.setbflag(6)
		end
		KSR.registrar.save("location", 0)
		return
	end
	if KSR.registrar.lookup("location") < 0 then
		KSR.sl.sl_send_reply(404, "Not Found")
		return
	end
	KSR.tm.t_relay()
end`

// TestRegisterBehindNAT: a UA at 127.0.0.1:P registers a private Contact (10.0.0.9:5060). After
// fix_nated_register and save, a call to it reaches 127.0.0.1:P, and keepalives arrive there every second;
// nothing is sent to the private address.
func TestRegisterBehindNAT(t *testing.T) {
	t.Parallel()
	p := enginetest.Start(t, "[modules.usrloc]\nnat_bflag = 6\n[modules.registrar]\n[modules.tm]\n[modules.sl]\n"+
		"[modules.nathelper]\nnatping_interval = 1\nping_nated_only = true\n", registrarScript)
	phone := newUA(t, false)
	reg := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.9:5060;rport;branch=z9hG4bK-reg1\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=r1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg-nat@10.0.0.9\r\nCSeq: 1 REGISTER\r\n" +
		"Max-Forwards: 70\r\nContact: <sip:alice@10.0.0.9:5060>;expires=300\r\nContent-Length: 0\r\n\r\n"
	if _, err := phone.c.WriteToUDPAddrPort([]byte(reg), p.UDP); err != nil {
		t.Fatal(err)
	}
	ok := waitPacket(t, phone, "SIP/2.0 ", 3*time.Second)
	if !strings.HasPrefix(ok, "SIP/2.0 200 ") {
		t.Fatalf("REGISTER answered:\n%s", ok)
	}
	bs, err := store(t, p).Lookup(usrloc.DefaultTable, "alice")
	if err != nil || len(bs) != 1 {
		t.Fatalf("bindings of alice: %v %v", bs, err)
	}
	if want := "sip:" + phone.addr.String(); bs[0].Received != want {
		t.Errorf("saved received %q, want %q", bs[0].Received, want)
	}
	// a call to alice reaches the phone's real address, the private Contact as R-URI
	caller := p.UDPClient(t)
	caller.Send(caller.Request("INVITE", "sip:alice@127.0.0.1"))
	inv := waitPacket(t, phone, "INVITE ", 3*time.Second)
	if !strings.HasPrefix(inv, "INVITE sip:alice@10.0.0.9:5060 SIP/2.0\r\n") {
		t.Errorf("the call reached the phone as:\n%s", inv)
	}
	// keepalives: about one a second, at 127.0.0.1:P
	start := time.Now()
	time.Sleep(3200 * time.Millisecond)
	n := 0
	for _, pk := range phone.packets() {
		if pk.at.After(start) && string(pk.data) == "\x00\x00\x00\x00" {
			n++
			if pk.from != p.UDP {
				t.Errorf("keepalive from %s, want %s", pk.from, p.UDP)
			}
		}
	}
	if n < 2 || n > 5 {
		t.Errorf("%d keepalives in 3.2 s with natping_interval 1, want 2..5", n)
	}
	onlyLoopback(t, p)
}

// waitPacket waits for a packet starting with prefix and returns it.
func waitPacket(t *testing.T, u *ua, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, pk := range u.packets() {
			if strings.HasPrefix(string(pk.data), prefix) {
				return string(pk.data)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no packet starting with %q within %v", prefix, timeout)
	return ""
}
