package nathelper_test

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/usrloc"
)

// ua is a loopback UDP socket standing for a UA behind NAT: it records what it receives.
type ua struct {
	c    *net.UDPConn
	addr netip.AddrPort
	mu   sync.Mutex
	got  []packet
	// answer, when set, replies 200 to each request received
	answer bool
}

type packet struct {
	from netip.AddrPort
	at   time.Time
	data []byte
}

func newUA(t *testing.T, answer bool) *ua {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &ua{c: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), answer: answer}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			data := append([]byte(nil), buf[:n]...)
			u.mu.Lock()
			u.got = append(u.got, packet{from: from, at: time.Now(), data: data})
			u.mu.Unlock()
			if u.answer && n > 4 { // not a keepalive (CRLF)
				if r := enginetest.ReplyTo(string(data), 200); r != "" {
					_, _ = c.WriteToUDPAddrPort([]byte(r), from)
				}
			}
		}
	}()
	return u
}

func (u *ua) packets() []packet {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]packet(nil), u.got...)
}

func udpSocket(t *testing.T, p *enginetest.Proxy) string {
	for _, l := range p.E.Listeners() {
		if l.Proto == engine.UDP {
			return l.String()
		}
	}
	t.Fatal("no UDP listener")
	return ""
}

func store(t *testing.T, p *enginetest.Proxy) usrloc.Store {
	t.Helper()
	ul, err := usrloc.FromEngine(p.E)
	if err != nil {
		t.Fatal(err)
	}
	return ul.Store()
}

func register(t *testing.T, p *enginetest.Proxy, b usrloc.Binding) {
	t.Helper()
	now := time.Now().Unix()
	b.Expires, b.Modified, b.Q = now+3600, now, -1
	if b.Socket == "" {
		b.Socket = udpSocket(t, p)
	}
	err := store(t, p).Update(usrloc.DefaultTable, b.AOR, func(cur []usrloc.Binding) ([]usrloc.Binding, error) {
		return append(append([]usrloc.Binding(nil), cur...), b), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var sentRE = regexp.MustCompile(`msg="natping sent".* dst=(\S+)`)

// onlyLoopback fails the test if the pinger ever sent to an address that is not 127.0.0.1: the private
// Contacts of the tests belong to nobody here.
func onlyLoopback(t *testing.T, p *enginetest.Proxy) int {
	t.Helper()
	n := 0
	for _, m := range sentRE.FindAllStringSubmatch(p.Log.String(), -1) {
		n++
		ap, err := netip.ParseAddrPort(m[1])
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("a keepalive went to %s, not to loopback", m[1])
		}
	}
	return n
}

// TestKeepalivesUDP: with natping_interval 1, a NATed contact registered from 127.0.0.1:P gets the 4-byte
// keepalive at 127.0.0.1:P about once a second, from the socket it registered on; its private Contact
// address is never used, a NATed contact without a received address is not pinged, and with
// ping_nated_only a contact without the NAT flag is not pinged either.
func TestKeepalivesUDP(t *testing.T) {
	t.Parallel()
	p := enginetest.Start(t, "[modules.usrloc]\nnat_bflag = 6\n[modules.nathelper]\nnatping_interval = 1\nping_nated_only = true\n",
		"function ksr_request_route() end")
	nated, plain := newUA(t, false), newUA(t, false)
	register(t, p, usrloc.Binding{AOR: "alice", Contact: "sip:alice@10.0.0.9:5060", Received: "sip:" + nated.addr.String(), CFlags: 1 << 6})
	register(t, p, usrloc.Binding{AOR: "carol", Contact: "sip:carol@192.168.1.20:5060", CFlags: 1 << 6}) // NATed, no received: never pinged
	register(t, p, usrloc.Binding{AOR: "bob", Contact: "sip:bob@" + plain.addr.String()})                // not NATed
	time.Sleep(3500 * time.Millisecond)
	got := nated.packets()
	if len(got) < 2 || len(got) > 5 {
		t.Fatalf("NATed contact got %d keepalives in 3.5 s with natping_interval 1, want 2..5", len(got))
	}
	for i, pk := range got {
		if string(pk.data) != "\x00\x00\x00\x00" {
			t.Errorf("keepalive %d is %q, want 4 zero bytes", i, pk.data)
		}
		if pk.from != p.UDP {
			t.Errorf("keepalive %d came from %s, want the registered socket %s", i, pk.from, p.UDP)
		}
		if i > 0 {
			if gap := pk.at.Sub(got[i-1].at); gap < 500*time.Millisecond || gap > 2*time.Second {
				t.Errorf("keepalives %d and %d are %v apart, want about 1 s", i-1, i, gap)
			}
		}
	}
	if n := len(plain.packets()); n != 0 {
		t.Errorf("ping_nated_only: the contact without the NAT flag got %d keepalives", n)
	}
	if n := onlyLoopback(t, p); n != len(got) {
		t.Errorf("%d keepalives logged, %d received: something was sent elsewhere", n, len(got))
	}
	if strings.Contains(p.Log.String(), "carol") {
		t.Errorf("the NATed contact without a received address was pinged:\n%s", p.Log.String())
	}
}

// TestKeepalivesSIP: SIP keepalives (sipping_bflag) to every contact; the replies are absorbed; a contact
// that does not answer for keepalive_timeout is unregistered, one that answers stays.
func TestKeepalivesSIP(t *testing.T) {
	t.Parallel()
	p := enginetest.Start(t, "[modules.usrloc]\nnat_bflag = 6\n[modules.nathelper]\nnatping_interval = 1\n"+
		"sipping_bflag = 7\nsipping_from = \"sip:pinger@127.0.0.1\"\nkeepalive_timeout = 2\n",
		"function ksr_reply_route() KSR.err('reply route ran for a keepalive reply') end\nfunction ksr_request_route() end")
	alive, silent := newUA(t, true), newUA(t, false)
	register(t, p, usrloc.Binding{AOR: "alice", Contact: "sip:alice@10.0.0.9:5060", Received: "sip:" + alive.addr.String(), CFlags: 1<<6 | 1<<7})
	register(t, p, usrloc.Binding{AOR: "bob", Contact: "sip:bob@10.0.0.10:5060", Received: "sip:" + silent.addr.String(), CFlags: 1 << 6})
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if bs, _ := store(t, p).Lookup(usrloc.DefaultTable, "bob"); len(bs) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if bs, _ := store(t, p).Lookup(usrloc.DefaultTable, "bob"); len(bs) != 0 {
		t.Fatalf("the silent contact is still registered after keepalive_timeout 2 s")
	}
	if bs, _ := store(t, p).Lookup(usrloc.DefaultTable, "alice"); len(bs) != 1 {
		t.Errorf("the contact that answers was unregistered")
	}
	got := alive.packets()
	if len(got) < 2 {
		t.Fatalf("the answering contact got %d keepalives", len(got))
	}
	req := string(got[0].data)
	for _, want := range []string{"OPTIONS sip:alice@10.0.0.9:5060 SIP/2.0\r\n", "\r\nFrom: <sip:pinger@127.0.0.1>;tag=",
		"\r\nTo: <sip:alice@10.0.0.9:5060>\r\n", "\r\nVia: SIP/2.0/UDP " + p.UDP.String() + ";branch=z9hG4bK", "\r\nCSeq: 1 OPTIONS\r\n"} {
		if !strings.Contains(req, want) {
			t.Errorf("keepalive lacks %q:\n%s", want, req)
		}
	}
	if n := len(silent.packets()); n < 2 {
		t.Errorf("the silent contact got %d keepalives before being unregistered, want 2 or more", n)
	}
	if strings.Contains(p.Log.String(), "reply route ran") {
		t.Errorf("a keepalive reply reached the reply route")
	}
	if !strings.Contains(p.Log.String(), "keepalive_timeout without a reply") {
		t.Errorf("no log line for the unregistered contact")
	}
	onlyLoopback(t, p)
}

// TestKeepalivesSpread: with natping_interval 2, each contact is pinged once per 2 s, and the contacts are
// spread over the two seconds instead of all pinged in one burst.
func TestKeepalivesSpread(t *testing.T) {
	t.Parallel()
	p := enginetest.Start(t, "[modules.usrloc]\nnat_bflag = 6\n[modules.nathelper]\nnatping_interval = 2\n",
		"function ksr_request_route() end")
	var uas []*ua
	for i := range 8 {
		u := newUA(t, false)
		uas = append(uas, u)
		register(t, p, usrloc.Binding{AOR: "u" + strconv.Itoa(i), Contact: "sip:u@10.0.0." + strconv.Itoa(i+1) + ":5060",
			Received: "sip:" + u.addr.String(), CFlags: 1 << 6})
	}
	time.Sleep(4300 * time.Millisecond)
	var first []time.Time
	for i, u := range uas {
		got := u.packets()
		if len(got) < 1 || len(got) > 3 {
			t.Errorf("contact %d got %d keepalives in 4.3 s with natping_interval 2, want 1..3", i, len(got))
			continue
		}
		if len(got) >= 2 {
			if gap := got[1].at.Sub(got[0].at); gap < 1500*time.Millisecond || gap > 2500*time.Millisecond {
				t.Errorf("contact %d: keepalives %v apart, want about 2 s", i, gap)
			}
		}
		first = append(first, got[0].at)
	}
	minT, maxT := first[0], first[0]
	for _, f := range first {
		if f.Before(minT) {
			minT = f
		}
		if f.After(maxT) {
			maxT = f
		}
	}
	if maxT.Sub(minT) < 700*time.Millisecond {
		t.Errorf("all contacts were pinged within %v: not spread over the interval", maxT.Sub(minT))
	}
	onlyLoopback(t, p)
}

// TestEnablePingAndDisableFlag: a contact that is not NATed is pinged at its Contact address (ping_nated_only
// false), one with natping_disable_bflag never, and nathelper.enable_ping 0 stops the keepalives until 1.
func TestEnablePingAndDisableFlag(t *testing.T) {
	t.Parallel()
	p := enginetest.Start(t, "[modules.usrloc]\n[modules.nathelper]\nnatping_interval = 1\nnatping_disable_bflag = 5\n",
		"function ksr_request_route() end")
	plain, off := newUA(t, false), newUA(t, false)
	register(t, p, usrloc.Binding{AOR: "plain", Contact: "sip:plain@" + plain.addr.String()})
	register(t, p, usrloc.Binding{AOR: "off", Contact: "sip:off@" + off.addr.String(), CFlags: 1 << 5})
	time.Sleep(1500 * time.Millisecond)
	if len(plain.packets()) == 0 {
		t.Fatal("the contact without NAT was not pinged at its Contact address")
	}
	inst, _ := p.E.Module("nathelper")
	cmd := inst.(engine.Commander).RPC()[0]
	if cmd.Name != "nathelper.enable_ping" {
		t.Fatalf("command %s", cmd.Name)
	}
	if _, err := cmd.Fn([]string{"0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	before := len(plain.packets())
	time.Sleep(2200 * time.Millisecond)
	if after := len(plain.packets()); after != before {
		t.Errorf("enable_ping 0: %d keepalives still sent", after-before)
	}
	if _, err := cmd.Fn([]string{"1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if after := len(plain.packets()); after == before {
		t.Errorf("enable_ping 1: keepalives did not resume")
	}
	if n := len(off.packets()); n != 0 {
		t.Errorf("the contact with natping_disable_bflag got %d keepalives", n)
	}
	if _, err := cmd.Fn([]string{"x"}); err == nil {
		t.Errorf("enable_ping x: no error")
	}
	onlyLoopback(t, p)
}

// TestKeepaliveSocket: pings leave from the socket the contact registered on, or from force_socket.
func TestKeepaliveSocket(t *testing.T) {
	t.Parallel()
	for _, force := range []bool{false, true} {
		port := strconv.Itoa(enginetest.FreePort(t))
		conf := "[core]\nlisten = [\"udp:127.0.0.1:" + port + "\", \"udp:127.0.0.1:0\"]\n[modules.usrloc]\n" +
			"[modules.nathelper]\nnatping_interval = 1\n"
		if force {
			conf += "force_socket = \"udp:127.0.0.1:" + port + "\"\n"
		}
		p := enginetest.Start(t, conf, "function ksr_request_route() end")
		ls := p.E.Listeners()
		if len(ls) != 2 {
			t.Fatalf("%d listeners", len(ls))
		}
		want := ls[1] // the registered one
		if force {
			want = ls[0]
		}
		u := newUA(t, false)
		register(t, p, usrloc.Binding{AOR: "a", Contact: "sip:a@" + u.addr.String(), Socket: ls[1].String()})
		waitPacket(t, u, "\x00", 3*time.Second)
		for _, pk := range u.packets() {
			if pk.from != want.Addr {
				t.Errorf("force_socket %v: keepalive from %s, want %s", force, pk.from, want.Addr)
			}
		}
		onlyLoopback(t, p)
	}
}
