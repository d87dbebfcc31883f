package main

// The load balancer example (scripts/examples/loadbalancer.toml + loadbalancer.lua + dispatcher.list) run
// as shipped on free ports, with a farm of three Go UDP servers on 127.0.0.1: `siplua -c` accepts it,
// calls are spread over the farm, a server answering 503 or not answering at all is failed over, a flood
// from one source address is banned while another source is served, a malformed request gets sanity's
// reply, and the farm's own requests are relayed where they ask instead of being balanced.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestExampleLoadBalancerCheck: `siplua -c` prints "config OK" for the example, with no warning, and
// writes nothing next to it.
func TestExampleLoadBalancerCheck(t *testing.T) {
	before, _ := filepath.Glob(filepath.Join(exampleDir, "*"))
	var stdout, stderr bytes.Buffer
	code := run([]string{"-c", "-config", filepath.Join(exampleDir, "loadbalancer.toml")}, &stdout, &stderr)
	if code != 0 || stdout.String() != "config OK\n" || stderr.Len() != 0 {
		t.Fatalf("siplua -c: exit %d, stdout %q, stderr %q; want exit 0, \"config OK\"", code, stdout.String(), stderr.String())
	}
	after, _ := filepath.Glob(filepath.Join(exampleDir, "*"))
	if len(after) != len(before) {
		t.Errorf("siplua -c created files next to the example: before %q, after %q", before, after)
	}
}

// lbServer is one server of the farm: a UDP socket on 127.0.0.1 that records what it receives and answers
// requests with its current code (200 with a Contact; 0: no answer at all, as a dead server). It can send
// requests of its own from the same socket, as a farm server calling out through the balancer.
type lbServer struct {
	name string
	Addr netip.AddrPort
	conn *net.UDPConn
	code atomic.Int32

	mu  sync.Mutex
	got []e2eMsg
	new chan struct{} // closed and replaced on every message
}

func startLBServer(t *testing.T, name string) *lbServer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &lbServer{name: name, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c, new: make(chan struct{})}
	s.code.Store(200)
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, ok := lbParse(buf[:n])
			if !ok {
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, m)
			close(s.new)
			s.new = make(chan struct{})
			s.mu.Unlock()
			if r := s.answer(m); r != "" {
				_, _ = c.WriteToUDPAddrPort([]byte(r), src)
			}
		}
	}()
	return s
}

// answer is the server's reply to m ("" for none).
func (s *lbServer) answer(m e2eMsg) string {
	code := int(s.code.Load())
	if strings.HasPrefix(m.First, "SIP/") || strings.HasPrefix(m.First, "ACK ") || code == 0 {
		return ""
	}
	if strings.HasPrefix(m.First, "BYE ") {
		code = 200 // a server that is up ends the calls it has
	}
	reason := map[int]string{200: "OK", 503: "Service Unavailable", 500: "Server Internal Error"}[code]
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, h := range m.Hdrs {
		switch strings.ToLower(h[0]) {
		case "via", "record-route", "from", "call-id", "cseq":
			b.WriteString(h[0] + ": " + h[1] + "\r\n")
		case "to":
			if _, ok := e2eParam(h[1], "tag"); ok {
				b.WriteString("To: " + h[1] + "\r\n")
			} else {
				b.WriteString("To: " + h[1] + ";tag=" + s.name + "\r\n")
			}
		}
	}
	if code == 200 {
		fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", s.name, s.Addr)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// received returns the messages received so far whose first line starts with prefix and whose Call-ID is
// callID ("" = any).
func (s *lbServer) received(prefix, callID string) []e2eMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []e2eMsg
	for _, m := range s.got {
		if strings.HasPrefix(m.First, prefix) && (callID == "" || lbHdr(m, "Call-ID") == callID) {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the first message matching prefix and callID, failing the test after d.
func (s *lbServer) wait(t *testing.T, prefix, callID string, d time.Duration) e2eMsg {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		ch := s.new
		s.mu.Unlock()
		if got := s.received(prefix, callID); len(got) > 0 {
			return got[0]
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("server %s: no %q of call %q within %v", s.name, prefix, callID, d)
		}
	}
}

// send sends raw from the server's socket to addr.
func (s *lbServer) send(t *testing.T, raw string, addr netip.AddrPort) {
	t.Helper()
	if _, err := s.conn.WriteToUDPAddrPort([]byte(raw), addr); err != nil {
		t.Fatal(err)
	}
}

// lbParse splits a message like e2eParse, without failing on garbage (a server reads whatever comes).
func lbParse(raw []byte) (e2eMsg, bool) {
	head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok {
		return e2eMsg{}, false
	}
	lines := strings.Split(head, "\r\n")
	m := e2eMsg{First: lines[0], Body: body}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return e2eMsg{}, false
		}
		m.Hdrs = append(m.Hdrs, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return m, true
}

// lbHdr is the first value of header name ("" when absent).
func lbHdr(m e2eMsg, name string) string {
	if v := m.All(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// lbProxy is the running example.
type lbProxy struct {
	p     *e2eProc
	ctl   string         // ctl socket
	udp6  netip.AddrPort // the [::1] UDP socket: a second source address on the loopback interface
	farm  []*lbServer
	bySrv map[string]*lbServer
}

// exampleLB starts a farm of three servers and the example on them, copied into a temp directory with
// these changes, each checked to apply (so the test follows the files or fails):
//   - listen on kernel-chosen ports, and on [::1] too: pike and the ban list work per source address, and
//     on the loopback interface a flooding source needs an address of its own (::1) next to 127.0.0.1;
//   - the farm's ports (dispatcher.list and the permissions entries) are the test servers';
//   - the ctl socket in the temp directory, and a 2 s route budget (the 100 ms default is for production;
//     a -race binary on a loaded machine is slower).
func exampleLB(t *testing.T) *lbProxy {
	t.Helper()
	lb := &lbProxy{bySrv: map[string]*lbServer{}}
	for i := 1; i <= 3; i++ {
		s := startLBServer(t, "app"+strconv.Itoa(i))
		lb.farm = append(lb.farm, s)
		lb.bySrv[s.name] = s
	}
	dir := t.TempDir()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(exampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write := func(name, content string, repl [][2]string) {
		for _, r := range repl {
			if !strings.Contains(content, r[0]) {
				t.Fatalf("%s no longer has %q: update this test", name, r[0])
			}
			content = strings.Replace(content, r[0], r[1], 1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("loadbalancer.lua", read("loadbalancer.lua"), nil)
	var list, cfg [][2]string
	for i, s := range lb.farm {
		port := strconv.Itoa(5071 + i)
		list = append(list, [2]string{"sip:127.0.0.1:" + port, "sip:" + s.Addr.String()})
		cfg = append(cfg, [2]string{"port = " + port + "\n", fmt.Sprintf("port = %d\n", s.Addr.Port())})
	}
	write("dispatcher.list", read("dispatcher.list"), list)
	cfg = append(cfg,
		[2]string{`listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]`,
			`listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "udp:[::1]:0"]`},
		[2]string{"[lua]\n", "[ctl]\nsocket = \"ctl.sock\"\n\n[lua]\nroute_timeout = 2000\n"})
	write("loadbalancer.toml", read("loadbalancer.toml"), cfg)

	lb.p = e2eStart(t, "-config", filepath.Join(dir, "loadbalancer.toml"))
	lb.ctl = filepath.Join(dir, "ctl.sock")
	m := regexp.MustCompile(`socket=udp:(\[::1\]:\d+)`).FindStringSubmatch(lb.p.Log.String())
	if m == nil {
		t.Fatalf("no [::1] listening line in the log:\n%s", lb.p.Log)
	}
	lb.udp6 = netip.MustParseAddrPort(m[1])
	return lb
}

// call makes a call from c through the balancer to ruri: INVITE, 200 from a farm server, ACK and BYE
// along the Record-Route. It returns the server that took the call, after checking what it received.
func (lb *lbProxy) call(t *testing.T, c *enginetest.Client, ruri, callID string) *lbServer {
	t.Helper()
	inv := exampleInvite(c.Addr.String(), ruri, "sip:alice@example.org", callID, 1, "")
	c.Send(inv)
	ok := exampleExpect(t, c, 200, "OK")
	to := ok.Get(t, "To")
	tag, _ := e2eParam(to, "tag")
	srv := lb.bySrv[tag]
	if srv == nil {
		t.Fatalf("200 To %q: not from a farm server", to)
	}
	got := srv.wait(t, "INVITE ", callID+"@example-test", time.Second)
	if want := "INVITE " + ruri + " SIP/2.0"; got.First != want {
		t.Errorf("request line at %s %q, want %q (the balancer keeps the R-URI, it sets the next hop)", srv.name, got.First, want)
	}
	rr := got.All("Record-Route")
	if len(rr) != 1 || !strings.Contains(rr[0], lb.p.UDP.String()) {
		t.Fatalf("Record-Route at %s %q: want the balancer's %s", srv.name, rr, lb.p.UDP)
	}
	if vias := got.All("Via"); len(vias) != 2 || !strings.Contains(vias[0], lb.p.UDP.String()) {
		t.Errorf("Vias at %s %q: want the balancer's and the caller's", srv.name, vias)
	}

	// ACK and BYE: Request-URI the server's Contact, Route the Record-Route
	contact := strings.Trim(ok.Get(t, "Contact"), "<>")
	route := strings.Join(ok.All("Record-Route"), ", ")
	inDialog := func(method string, cseq int) string {
		return fmt.Sprintf("%s %s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;rport;branch=z9hG4bK%s\r\n"+
			"Max-Forwards: 70\r\n"+
			"Route: %s\r\n"+
			"From: <sip:alice@example.org>;tag=%s-from\r\n"+
			"To: %s\r\n"+
			"Call-ID: %s@example-test\r\n"+
			"CSeq: %d %s\r\n"+
			"Content-Length: 0\r\n\r\n",
			method, contact, c.Addr, enginetest.RandHex(8), route, callID, to, callID, cseq, method)
	}
	c.Send(inDialog("ACK", 1))
	srv.wait(t, "ACK "+contact, callID+"@example-test", 2*time.Second)
	c.Send(inDialog("BYE", 2))
	exampleExpect(t, c, 200, "OK")
	srv.wait(t, "BYE "+contact, callID+"@example-test", time.Second)
	return srv
}

// dsFlags returns the dispatcher state of every farm server (dispatcher.list), by server name.
func (lb *lbProxy) dsFlags(t *testing.T) map[string]string {
	t.Helper()
	_, res, err := ctl.Call(lb.ctl, "dispatcher.list", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("dispatcher.list: %v", err)
	}
	var l struct {
		RECORDS []struct {
			SET struct {
				TARGETS []struct{ DEST struct{ URI, FLAGS string } }
			}
		}
	}
	if err := json.Unmarshal(res, &l); err != nil {
		t.Fatalf("dispatcher.list %s: %v", res, err)
	}
	out := map[string]string{}
	for _, r := range l.RECORDS {
		for _, tg := range r.SET.TARGETS {
			for _, s := range lb.farm {
				if tg.DEST.URI == "sip:"+s.Addr.String() {
					out[s.name] = tg.DEST.FLAGS
				}
			}
		}
	}
	return out
}

// TestExampleLoadBalancer runs the example against its farm. The subtests run in order on one balancer:
// each changes the farm's state for the next (servers go down). They finish well within the first
// dispatcher ping round (ds_ping_interval = 10 s), so only the calls change the servers' states.
func TestExampleLoadBalancer(t *testing.T) {
	lb := exampleLB(t)
	ruri := "sip:service@" + lb.p.UDP.String()
	c := enginetest.NewUDPClient(t, lb.p.UDP)
	n := 0
	nextID := func(prefix string) string { n++; return fmt.Sprintf("%s%d", prefix, n) }

	t.Run("spread over the farm", func(t *testing.T) {
		// round robin: six calls, two on each server
		count := map[string]int{}
		for i := 0; i < 6; i++ {
			count[lb.call(t, c, ruri, nextID("rr")).name]++
		}
		for _, s := range lb.farm {
			if count[s.name] != 2 {
				t.Errorf("calls per server %v: want 2 on each", count)
				break
			}
		}
	})

	t.Run("farm requests relayed, not balanced", func(t *testing.T) {
		// a caller's request to another address still goes to the farm (the balancer balances everything
		// from outside) ...
		bob := enginetest.NewUDPClient(t, lb.p.UDP)
		out := "sip:bob@" + bob.Addr.String()
		lb.call(t, c, out, nextID("out"))
		if raw, err := bob.TryRecv(300 * time.Millisecond); err == nil {
			t.Fatalf("a caller's request reached its R-URI instead of the farm:\n%s", raw)
		}
		// ... the same request from a farm server goes where it asks
		app := lb.farm[0]
		id := nextID("farm")
		app.send(t, exampleInvite(app.Addr.String(), out, "sip:app1@example.org", id, 1, ""), lb.p.UDP)
		got := e2eParse(t, bob.RecvRaw(2*time.Second))
		if want := "INVITE " + out + " SIP/2.0"; got.First != want {
			t.Fatalf("request line at bob %q, want %q", got.First, want)
		}
		if rr := got.All("Record-Route"); len(rr) != 1 || !strings.Contains(rr[0], lb.p.UDP.String()) {
			t.Errorf("Record-Route %q, want the balancer's %s", rr, lb.p.UDP)
		}
		if vias := got.All("Via"); len(vias) != 2 || !strings.Contains(vias[1], app.Addr.String()) {
			t.Errorf("Vias at bob %q: want the balancer's and %s's", vias, app.name)
		}
		bob.Send(exampleReply(got, 486, "Busy Here"))
		if r := app.wait(t, "SIP/2.0 486", id+"@example-test", 2*time.Second); lbHdr(r, "CSeq") != "1 INVITE" {
			t.Errorf("486 at %s: CSeq %q", app.name, lbHdr(r, "CSeq"))
		}
		for _, s := range lb.farm[1:] {
			if got := s.received("INVITE ", id+"@example-test"); len(got) != 0 {
				t.Errorf("the farm's own INVITE was balanced to %s", s.name)
			}
		}
	})

	t.Run("503 fails over", func(t *testing.T) {
		down := lb.farm[1]
		down.code.Store(503)
		// round robin reaches it within three calls; every call succeeds on another server
		var hit string
		for i := 0; i < 3 && hit == ""; i++ {
			id := nextID("f503-")
			srv := lb.call(t, c, ruri, id)
			if srv == down {
				t.Fatalf("call %s answered by the server answering 503", id)
			}
			if len(down.received("INVITE ", id+"@example-test")) > 0 {
				hit = id
				// tm acknowledged the 503 hop by hop
				down.wait(t, "ACK ", id+"@example-test", 2*time.Second)
			}
		}
		if hit == "" {
			t.Fatalf("three calls and none tried %s", down.name)
		}
		if f := lb.dsFlags(t)[down.name]; f != "IP" {
			t.Errorf("%s is %q after its 503, want IP (inactive, probing)", down.name, f)
		}
		// out of rotation: the next calls go to the others
		before := len(down.received("INVITE ", ""))
		for i := 0; i < 4; i++ {
			lb.call(t, c, ruri, nextID("after503-"))
		}
		if after := len(down.received("INVITE ", "")); after != before {
			t.Errorf("%s got %d more INVITEs after it was marked down", down.name, after-before)
		}
		if _, ok := lb.p.Log.wait(regexp.MustCompile(`dispatcher:dst-down: sip:`+regexp.QuoteMeta(down.Addr.String())), time.Second); !ok {
			t.Error("no dispatcher:dst-down event logged by ksr_dispatcher_event")
		}
	})

	t.Run("silent server fails over", func(t *testing.T) {
		dead := lb.farm[2]
		dead.code.Store(0)
		var hit string
		for i := 0; i < 2 && hit == ""; i++ {
			id := nextID("silent")
			start := time.Now()
			srv := lb.call(t, c, ruri, id) // exampleExpect waits 5 s for the 200: fr_timer is 2 s
			if len(dead.received("INVITE ", id+"@example-test")) > 0 {
				hit = id
				if srv == dead {
					t.Fatal("the silent server took a call")
				}
				if d := time.Since(start); d < 1900*time.Millisecond {
					t.Errorf("failover after %v, want after fr_timer (2 s)", d)
				}
			}
		}
		if hit == "" {
			t.Fatalf("two calls and none tried %s", dead.name)
		}
		if f := lb.dsFlags(t)[dead.name]; f != "IP" {
			t.Errorf("%s is %q after its timeout, want IP", dead.name, f)
		}
	})

	t.Run("malformed request gets sanity's reply", func(t *testing.T) {
		id := nextID("bad")
		bad := strings.Replace(exampleInvite(c.Addr.String(), ruri, "sip:alice@example.org", id, 1, ""),
			"CSeq: 1 INVITE", "CSeq: 1 BYE", 1)
		c.Send(bad)
		exampleExpect(t, c, 400, "CSeq method does not match request method")
		for _, s := range lb.farm {
			if len(s.received("", id+"@example-test")) > 0 {
				t.Errorf("the malformed request reached %s", s.name)
			}
		}
	})

	t.Run("flood banned, others served", func(t *testing.T) {
		flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		defer flood.Close()
		src := flood.LocalAddr().(*net.UDPAddr).AddrPort()
		options := func(from netip.AddrPort) string {
			return fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
				"Via: SIP/2.0/UDP %s;rport;branch=z9hG4bK%s\r\n"+
				"Max-Forwards: 70\r\n"+
				"From: <sip:flood@example.net>;tag=%s\r\n"+
				"To: <sip:%s>\r\n"+
				"Call-ID: %s@flood\r\n"+
				"CSeq: 1 OPTIONS\r\n"+
				"Content-Length: 0\r\n\r\n",
				lb.udp6, from, enginetest.RandHex(8), enginetest.RandHex(4), lb.udp6, enginetest.RandHex(8))
		}
		// 300 keepalives in bursts of 20: three times pike's density (100 per 2 s unit), never more than
		// the socket buffers hold
		replies := 0
		count := func(wait time.Duration) {
			buf := make([]byte, 65535)
			for {
				_ = flood.SetReadDeadline(time.Now().Add(wait))
				n, _, err := flood.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200 Keepalive")) {
					replies++
				}
			}
		}
		for i := 0; i < 300; i++ {
			if _, err := flood.WriteToUDPAddrPort([]byte(options(src)), lb.udp6); err != nil {
				t.Fatal(err)
			}
			if i%20 == 19 {
				count(5 * time.Millisecond)
			}
		}
		count(500 * time.Millisecond)
		// pike passes up to density-1 per unit (2×density-1 across a unit boundary), then nothing
		if replies == 0 || replies >= 200 {
			t.Fatalf("%d of 300 flooding keepalives answered, want 1..199", replies)
		}
		if _, ok := lb.p.Log.wait(regexp.MustCompile(`ALERT: pike blocking OPTIONS from ::1:`), time.Second); !ok {
			t.Error("no pike ALERT logged")
		}
		// banned: the address, from any port, gets nothing ...
		other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, err := other.WriteToUDPAddrPort([]byte(options(other.LocalAddr().(*net.UDPAddr).AddrPort())), lb.udp6); err != nil {
			t.Fatal(err)
		}
		_ = other.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 65535)
		if n, _, err := other.ReadFromUDPAddrPort(buf); err == nil {
			first, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			t.Errorf("the banned address got an answer from another port: %q", first)
		}
		// ... and it is in the ban list, for autoexpire = 300 s
		_, res, err := ctl.Call(lb.ctl, "htable.dump", []string{"ipban"}, 5*time.Second)
		if err != nil {
			t.Fatalf("htable.dump ipban: %v", err)
		}
		var items []struct {
			Name   string
			Value  int
			Expire string
		}
		if err := json.Unmarshal(res, &items); err != nil || len(items) != 1 || items[0].Name != "::1" || items[0].Expire == "NEVER" {
			t.Errorf("htable.dump ipban %s: want ::1 with an expiry", res)
		}
		// the other source address is served: a keepalive and a call
		c.Send(c.Request("OPTIONS", "sip:"+lb.p.UDP.String()))
		exampleExpect(t, c, 200, "Keepalive")
		if srv := lb.call(t, c, ruri, nextID("served")); srv != lb.farm[0] {
			t.Errorf("call taken by %s, want %s (the only one up)", srv.name, lb.farm[0].name)
		}
	})
}
