package enginetest_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// deadTCPHop is a TCP port whose accept queue is full: a connect to it hangs (SYNs are dropped) until the
// connect timeout, the classic dead next hop.
func deadTCPHop(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; i < 8; i++ { // fill the accept queue (nobody accepts)
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("cannot make a TCP port whose connects hang on this kernel")
	return addr
}

// noReadHop accepts TCP connections and never reads from them, with a tiny receive buffer.
func noReadHop(t *testing.T) netip.AddrPort {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func message(c *enginetest.Client, ruri string, body int) string {
	return c.Request("MESSAGE", ruri, "Content-Type: text/plain") + strings.Repeat("x", body)
}

// withBody fixes the Content-Length of a request built by Client.Request with a body appended.
func withBody(req string, body int) string {
	return strings.Replace(req, "Content-Length: 0", fmt.Sprintf("Content-Length: %d", body), 1)
}

// While next hops hang (a TCP connect that never completes, a TCP peer that never reads, a DNS server that
// answers after 3 s), forwarding to other destinations goes on with no failure: no worker waits on them.
func TestHangingNextHopsDoNotStall(t *testing.T) {
	// several dead hops: connects to different addresses each hold whatever waits for them
	dead := []netip.AddrPort{deadTCPHop(t), deadTCPHop(t), deadTCPHop(t), deadTCPHop(t)}
	noRead := noReadHop(t)
	uas := enginetest.StartUAS(t, false, nil)
	dns := enginetest.StartDNS(t)
	dns.Add(t, "slow.test. 60 IN A 127.0.0.1")
	dns.Delay("slow.test", 3*time.Second)
	p := enginetest.Start(t, fmt.Sprintf("[core]\nworkers = 2\ndns_servers = [%q]\ndns_timeout = 5\n", dns.Addr), `
function ksr_request_route() KSR.forward() end`)
	hang := p.UDPClient(t)
	for i := 0; i < 10; i++ {
		hang.Send(hang.Request("MESSAGE", fmt.Sprintf("sip:dead%d@%s;transport=tcp", i, dead[i%len(dead)])))
		hang.Send(withBody(message(hang, fmt.Sprintf("sip:noread%d@%s;transport=tcp", i, noRead), 30000), 30000))
		hang.Send(hang.Request("MESSAGE", fmt.Sprintf("sip:slow%d@slow.test:%d", i, uas.Addr.Port())))
	}
	c := p.UDPClient(t)
	failed := 0
	t0 := time.Now()
	for i := 0; i < 50; i++ {
		c.Send(c.Request("MESSAGE", fmt.Sprintf("sip:live%d@%s", i, uas.Addr)))
		r, err := c.TryRecv(time.Second)
		if err != nil || !strings.HasPrefix(string(r), "SIP/2.0 200 ") {
			failed++
		}
	}
	if failed > 0 || time.Since(t0) > 2500*time.Millisecond {
		t.Fatalf("%d of 50 forwards to a live hop failed, %v for all, while other hops hang", failed, time.Since(t0))
	}
	// the requests whose name was being resolved are sent once the answer comes
	slow := 0
	deadline := time.After(6 * time.Second)
	for slow < 10 {
		select {
		case r := <-uas.Got:
			if strings.HasPrefix(r.Raw, "MESSAGE sip:slow") {
				slow++
			}
		case <-deadline:
			t.Fatalf("%d of 10 requests to slow.test arrived after the DNS answer", slow)
		}
	}
	if q := dns.Queries(); q > 4 {
		t.Errorf("%d DNS queries for one name, want one lookup (A and AAAA)", q)
	}
	// now cached: no further query, sent at once
	q := dns.Queries()
	c.Send(c.Request("MESSAGE", fmt.Sprintf("sip:cached@slow.test:%d", uas.Addr.Port())))
	if r, err := c.TryRecv(time.Second); err != nil || !strings.HasPrefix(string(r), "SIP/2.0 200 ") {
		t.Fatalf("cached name: %q %v", r, err)
	}
	if dns.Queries() != q {
		t.Error("a cached name was asked again")
	}
}

// Beyond the queue, new requests get 503 with Retry-After while replies to requests already relayed still
// reach the client: they go ahead of new requests.
func TestOverloadKeepsReplies(t *testing.T) {
	uas := enginetest.StartUAS(t, false, func(string) int { return 0 }) // the test answers itself
	p := enginetest.Start(t, "[core]\nworkers = 1\nqueue = 2\nretry_after = 7\n[modules.sl]\n", `
function ksr_request_route()
	if KSR.is_method("MESSAGE") then
		local x = 0
		for i = 1, 300000 do x = x + i end -- a slow route: the worker is busy
		KSR.sl.sl_send_reply(404, "Slow")
		return
	end
	KSR.forward()
end`)
	caller := p.UDPClient(t)
	caller.Send(caller.Request("INVITE", "sip:bob@"+uas.Addr.String()))
	inv := uas.Next(t, 2*time.Second)
	flood := p.UDPClient(t)
	for i := 0; i < 40; i++ {
		flood.Send(flood.Request("MESSAGE", "sip:x@127.0.0.1"))
	}
	// the INVITE's 200 arrives while the queue is full of MESSAGEs
	reply := uasReplyTo(inv.Raw)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.WriteToUDPAddrPort([]byte(reply), p.UDP); err != nil {
		t.Fatal(err)
	}
	got := false
	for !got {
		r, err := caller.TryRecv(5 * time.Second)
		if err != nil {
			t.Fatal("the 200 of the INVITE was lost under overload")
		}
		got = strings.HasPrefix(string(r), "SIP/2.0 200 ")
	}
	n503, n404 := 0, 0
	for {
		r, err := flood.TryRecv(3 * time.Second)
		if err != nil {
			break
		}
		s := string(r)
		switch {
		case strings.HasPrefix(s, "SIP/2.0 503 "):
			n503++
			if !strings.Contains(s, "\r\nRetry-After: 7\r\n") {
				t.Errorf("503 without Retry-After: 7:\n%s", s)
			}
		default: // routed: 404 (or a 500 should a route time budget cut the loop short)
			n404++
		}
	}
	if n503 == 0 || n503+n404 != 40 {
		t.Errorf("flood of 40: %d × 503, %d routed; want some 503 and every request answered", n503, n404)
	}
	if s := p.E.Stats().Snapshot(); s["rejected_overload"] != uint64(n503) {
		t.Errorf("rejected_overload = %d, want %d", s["rejected_overload"], n503)
	}
}

func uasReplyTo(raw string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=b\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// A proxy bound to 0.0.0.0 puts the address it is reached on (127.0.0.1 for a loopback peer) in Via and
// Record-Route, and knows it as itself.
func TestWildcardListen(t *testing.T) {
	for _, wild := range []string{"0.0.0.0", "[::]"} {
		t.Run(wild, func(t *testing.T) {
			if wild == "[::]" {
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6unspecified})
				if err != nil {
					t.Skip("no IPv6:", err)
				}
				c.Close()
			}
			testWildcardListen(t, wild)
		})
	}
}

func testWildcardListen(t *testing.T, wild string) {
	uas := enginetest.StartUAS(t, false, nil)
	p := enginetest.Start(t, fmt.Sprintf("[core]\nlisten = [\"udp:%s:0\", \"tcp:%s:0\"]\n[modules.sl]\n[modules.rr]\n", wild, wild), `
function ksr_request_route()
	if KSR.is_myself_ruri() then KSR.sl.sl_send_reply(200, "Myself") return end
	KSR.rr.record_route()
	KSR.forward()
end`)
	port := p.UDP.Port()
	if !p.UDP.Addr().IsUnspecified() {
		t.Fatalf("bound to %s, want the wildcard", p.UDP)
	}
	me := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	c := enginetest.NewUDPClient(t, me)
	c.Send(c.Request("OPTIONS", "sip:"+me.String()))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 || r.Reason != "Myself" {
		t.Fatalf("OPTIONS to %s: %d %s, want 200 Myself", me, r.StatusCode, r.Reason)
	}
	c.Send(c.Request("MESSAGE", "sip:bob@"+uas.Addr.String()))
	got := uas.Next(t, 2*time.Second).Raw
	if !strings.Contains(got, "\r\nVia: SIP/2.0/UDP "+me.String()+";branch=") {
		t.Errorf("Via does not name %s:\n%s", me, got)
	}
	if !strings.Contains(got, "Record-Route: <sip:"+me.String()+";lr") {
		t.Errorf("Record-Route does not name %s:\n%s", me, got)
	}
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		t.Errorf("relayed reply: %d", r.StatusCode)
	}
	// over TCP too
	tc := enginetest.NewTCPClient(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.TCP.Port()))
	tc.Send(tc.Request("OPTIONS", fmt.Sprintf("sip:127.0.0.1:%d;transport=tcp", p.TCP.Port())))
	if r := tc.RecvResponse(2 * time.Second); r.StatusCode != 200 || r.Reason != "Myself" {
		t.Fatalf("OPTIONS over TCP: %d %s", r.StatusCode, r.Reason)
	}
}

// A request too big for UDP (udp_mtu - 200) goes over TCP when the destination does not force a transport
// (RFC 3261 §18.1.1); with ;transport=udp it stays on UDP.
func TestBigRequestGoesOverTCP(t *testing.T) {
	uas := enginetest.StartUAS(t, true, nil)
	p := enginetest.Start(t, "", `function ksr_request_route() KSR.forward() end`)
	c := p.UDPClient(t)
	for _, tc := range []struct {
		ruri, want string
		body       int
	}{
		{"sip:bob@" + uas.Addr.String(), "TCP", 4000},
		{"sip:bob@" + uas.Addr.String(), "UDP", 500},
		{"sip:bob@" + uas.Addr.String() + ";transport=udp", "UDP", 4000},
	} {
		c.Send(withBody(message(c, tc.ruri, tc.body), tc.body))
		r := uas.Next(t, 3*time.Second)
		if r.Proto != tc.want {
			t.Errorf("%s with %d bytes of body arrived over %s, want %s", tc.ruri, tc.body, r.Proto, tc.want)
		}
		if !strings.Contains(r.Raw, "\r\nVia: SIP/2.0/"+tc.want+" ") {
			t.Errorf("proxy Via is not %s:\n%.300s", tc.want, r.Raw)
		}
		if resp, err := c.TryRecv(2 * time.Second); err != nil || !strings.HasPrefix(string(resp), "SIP/2.0 200 ") {
			t.Errorf("reply: %q %v", resp, err)
		}
	}
}

// A TCP next hop that never reads fills its connection's queue; sends to it then fail at once and none ever
// waits on the socket.
func TestTCPSendNeverBlocks(t *testing.T) {
	hop := noReadHop(t)
	p := enginetest.Start(t, "", `function ksr_request_route() end`)
	msg := []byte("MESSAGE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 16000\r\n\r\n" + strings.Repeat("x", 16000))
	var slowest time.Duration
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		t0 := time.Now()
		full = p.E.Send(engine.TCP, nil, hop, msg)
		slowest = max(slowest, time.Since(t0))
	}
	if full == nil || !strings.Contains(full.Error(), "queue full") {
		t.Errorf("16 MB to a peer that does not read: no queue-full error (last: %v)", full)
	}
	if slowest > time.Second { // a blocked send would wait for the 10 s write timeout; slack for a loaded machine
		t.Errorf("a send waited %v", slowest)
	}
}
