package main

// End-to-end tests: the built siplua binary, real UDP and TCP sockets on 127.0.0.1, assertions on the wire.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

const e2eWait = 3 * time.Second

var e2eCallIDRe = regexp.MustCompile(`(?m)^Call-ID: (\S+)\r$`)

// TestE2ERegister404 checks the classic example's reply header by header (RFC 3261 §8.2.6, RFC 3581).
func TestE2ERegister404(t *testing.T) {
	p := e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), ""))
	tests := []struct {
		name, proto string
		nat         bool // the Via names another address than the source: received and rport must fix it
	}{
		{"udp", "UDP", false},
		{"udp behind NAT", "UDP", true},
		{"tcp", "TCP", false},
		{"tcp behind NAT", "TCP", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := p.client(t, tc.proto)
			sentBy := c.Addr.String()
			if tc.nat {
				sentBy = "192.0.2.10:5062"
			}
			branch := "z9hG4bK-e2e-" + enginetest.RandHex(6)
			callID := enginetest.RandHex(8) + "@e2e"
			req := e2eRequest("REGISTER", "sip:example.org", tc.proto, sentBy, branch, callID, 70)
			c.Send(req)
			r := e2eParse(t, c.RecvRaw(e2eWait))

			if r.First != "SIP/2.0 404 No registrar" {
				t.Errorf("status line %q", r.First)
			}
			via := r.Get(t, "Via")
			wantVia := "SIP/2.0/" + tc.proto + " " + sentBy + ";"
			if !strings.HasPrefix(via, wantVia) {
				t.Errorf("Via %q: want prefix %q", via, wantVia)
			}
			for param, want := range map[string]string{
				"received": "127.0.0.1", "rport": strconv.Itoa(int(c.Addr.Port())), "branch": branch,
			} {
				if got, ok := e2eParam(via, param); !ok || got != want {
					t.Errorf("Via %q: %s=%q (present %v), want %q", via, param, got, ok, want)
				}
			}
			if got := r.Get(t, "From"); got != `"Alice" <sip:alice@example.org>;tag=e2e-from-1` {
				t.Errorf("From %q", got)
			}
			to := r.Get(t, "To")
			tag, ok := e2eParam(to, "tag")
			if !strings.HasPrefix(to, "<sip:alice@example.org>;tag=") || !ok || tag == "" {
				t.Errorf("To %q: want the request's To with a non-empty tag", to)
			}
			if got := r.Get(t, "Call-ID"); got != callID {
				t.Errorf("Call-ID %q, want %q", got, callID)
			}
			if got := r.Get(t, "CSeq"); got != "7 REGISTER" {
				t.Errorf("CSeq %q", got)
			}
			if got := r.Get(t, "Server"); got != "siplua" {
				t.Errorf("Server %q", got)
			}
			if got := r.Get(t, "Content-Length"); got != "0" || r.Body != "" {
				t.Errorf("Content-Length %q, body %q", got, r.Body)
			}
			var names []string
			for _, h := range r.Hdrs {
				names = append(names, h[0])
			}
			if got := strings.Join(names, ","); got != "Via,From,To,Call-ID,CSeq,Server,Content-Length" {
				t.Errorf("headers %s: want Via,From,To,Call-ID,CSeq,Server,Content-Length", got)
			}

			// a retransmission (the same bytes) gets the same To-tag ...
			c.Send(req)
			r2 := e2eParse(t, c.RecvRaw(e2eWait))
			if tag2, _ := e2eParam(r2.Get(t, "To"), "tag"); tag2 != tag {
				t.Errorf("retransmission got To-tag %q, first reply %q", tag2, tag)
			}
			// ... another request another one
			c.Send(e2eRequest("REGISTER", "sip:example.org", tc.proto, sentBy, "z9hG4bK-e2e-"+enginetest.RandHex(6),
				enginetest.RandHex(8)+"@e2e", 70))
			r3 := e2eParse(t, c.RecvRaw(e2eWait))
			if tag3, _ := e2eParam(r3.Get(t, "To"), "tag"); tag3 == tag || tag3 == "" {
				t.Errorf("a different request got To-tag %q, the first %q", tag3, tag)
			}
		})
	}
}

// TestE2EMaxForwards: Max-Forwards 0 is answered 483 by the default script.
func TestE2EMaxForwards(t *testing.T) {
	p := e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), ""))
	for _, proto := range []string{"UDP", "TCP"} {
		t.Run(proto, func(t *testing.T) {
			c := p.client(t, proto)
			c.Send(e2eRequest("OPTIONS", "sip:bob@example.org", proto, c.Addr.String(),
				"z9hG4bK-e2e-"+enginetest.RandHex(6), enginetest.RandHex(8)+"@e2e", 0))
			r := e2eParse(t, c.RecvRaw(e2eWait))
			if r.First != "SIP/2.0 483 Too Many Hops" {
				t.Errorf("status line %q, want SIP/2.0 483 Too Many Hops", r.First)
			}
		})
	}
}

const e2eErrorScript = `-- e2e: MESSAGE hits a Lua runtime error, anything else is answered
function ksr_request_route()
	if KSR.is_MESSAGE() then
		local t = nil
		KSR.info("never logged " .. t.field)
	end
	KSR.sl.sl_send_reply(404, "No registrar")
end
`

// TestE2ELuaError: a runtime error answers 500, logs file:line, and the worker keeps serving.
func TestE2ELuaError(t *testing.T) {
	script := t.TempDir() + "/boom.lua"
	if err := os.WriteFile(script, []byte(e2eErrorScript), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e2eStart(t, "-config", e2eConfig(t, script, ""))
	for _, proto := range []string{"UDP", "TCP"} {
		t.Run(proto, func(t *testing.T) {
			c := p.client(t, proto)
			// more errors than workers, so every worker has failed at least once before the check
			for i := range 12 {
				c.Send(e2eRequest("MESSAGE", "sip:bob@example.org", proto, c.Addr.String(),
					fmt.Sprintf("z9hG4bK-e2e-err%d-%s", i, enginetest.RandHex(4)), enginetest.RandHex(8)+"@e2e", 70))
				r := e2eParse(t, c.RecvRaw(e2eWait))
				if r.First != "SIP/2.0 500 Server Internal Error" {
					t.Fatalf("after a Lua error: status line %q, want SIP/2.0 500 Server Internal Error", r.First)
				}
			}
			for i := range 12 {
				c.Send(e2eRequest("REGISTER", "sip:example.org", proto, c.Addr.String(),
					fmt.Sprintf("z9hG4bK-e2e-ok%d-%s", i, enginetest.RandHex(4)), enginetest.RandHex(8)+"@e2e", 70))
				r := e2eParse(t, c.RecvRaw(e2eWait))
				if r.First != "SIP/2.0 404 No registrar" {
					t.Fatalf("request after Lua errors: status line %q, want 404", r.First)
				}
			}
		})
	}
	re := regexp.MustCompile(`level=ERROR .*where=\S*boom\.lua:5\b.*attempt to index`)
	if line, ok := p.Log.wait(re, e2eWait); !ok {
		t.Errorf("no error log line naming boom.lua:5 and the error; log:\n%s", p.Log)
	} else {
		t.Logf("logged: %s", line)
	}
}

// e2eUAS is a UDP user agent server on 127.0.0.1 that answers each request 200 and hands it to the test.
type e2eUAS struct {
	conn *net.UDPConn
	Addr netip.AddrPort
	reqs chan []byte
}

func e2eStartUAS(t *testing.T) *e2eUAS {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &e2eUAS{conn: c, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), reqs: make(chan []byte, 16)}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := append([]byte(nil), buf[:n]...)
			select {
			case u.reqs <- raw:
			default:
			}
			_, _ = c.WriteToUDPAddrPort(e2eOK(raw), src)
		}
	}()
	return u
}

// e2eOK builds the UAS's 200: every Via in order, From, To with a tag, Call-ID and CSeq copied.
func e2eOK(req []byte) []byte {
	head, _, _ := strings.Cut(string(req), "\r\n\r\n")
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=uas-e2e\r\n")
		}
	}
	b.WriteString("Server: e2e-uas\r\nContent-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// TestE2EForward: a request for another host is relayed statelessly to a UDP UAS and its 200 comes back.
func TestE2EForward(t *testing.T) {
	p := e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), ""))
	uas := e2eStartUAS(t)
	tests := []struct {
		name, proto string
		nat         bool
	}{
		{"udp", "UDP", false},
		{"udp behind NAT", "UDP", true},
		{"tcp to udp", "TCP", false},
		{"tcp to udp behind NAT", "TCP", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := p.client(t, tc.proto)
			sentBy := c.Addr.String()
			if tc.nat {
				sentBy = "192.0.2.10:5062"
			}
			branch := "z9hG4bK-e2e-" + enginetest.RandHex(6)
			callID := enginetest.RandHex(8) + "@e2e"
			ruri := "sip:uas@" + uas.Addr.String()
			c.Send(e2eRequest("INVITE", ruri, tc.proto, sentBy, branch, callID, 70))

			var relayed e2eMsg
			select {
			case raw := <-uas.reqs:
				relayed = e2eParse(t, raw)
			case <-time.After(e2eWait):
				t.Fatalf("the UAS got nothing; proxy log:\n%s", p.Log)
			}
			if relayed.First != "INVITE "+ruri+" SIP/2.0" {
				t.Errorf("relayed request line %q", relayed.First)
			}
			vias := relayed.All("Via")
			if len(vias) != 2 {
				t.Fatalf("relayed Vias %q: want the proxy's and the client's", vias)
			}
			wantTop := "SIP/2.0/UDP " + p.UDP.String() + ";branch=z9hG4bK"
			if !strings.HasPrefix(vias[0], wantTop) || strings.Contains(vias[0], branch) {
				t.Errorf("proxy Via %q: want prefix %q and a branch of its own", vias[0], wantTop)
			}
			if !strings.HasPrefix(vias[1], "SIP/2.0/"+tc.proto+" "+sentBy+";") {
				t.Errorf("client Via %q: want sent-by %s kept", vias[1], sentBy)
			}
			for param, want := range map[string]string{
				"branch": branch, "received": "127.0.0.1", "rport": strconv.Itoa(int(c.Addr.Port())),
			} {
				if got, ok := e2eParam(vias[1], param); !ok || got != want {
					t.Errorf("client Via %q: %s=%q (present %v), want %q", vias[1], param, got, ok, want)
				}
			}
			if got := relayed.Get(t, "Max-Forwards"); got != "69" {
				t.Errorf("relayed Max-Forwards %q, want 69", got)
			}
			if got := relayed.Get(t, "Call-ID"); got != callID {
				t.Errorf("relayed Call-ID %q", got)
			}

			r := e2eParse(t, c.RecvRaw(e2eWait))
			if r.First != "SIP/2.0 200 OK" {
				t.Fatalf("reply through the proxy: %q", r.First)
			}
			rv := r.All("Via")
			if len(rv) != 1 || rv[0] != vias[1] {
				t.Errorf("reply Vias %q: want only the client's %q", rv, vias[1])
			}
			if got := r.Get(t, "Call-ID"); got != callID {
				t.Errorf("reply Call-ID %q", got)
			}
			if got := r.Get(t, "Server"); got != "e2e-uas" {
				t.Errorf("reply Server %q: the UAS's reply should be relayed as is", got)
			}
		})
	}
}

// TestE2EConcurrentUDP: 2 000 REGISTERs in flight at once from 20 sockets, every one answered.
func TestE2EConcurrentUDP(t *testing.T) {
	p := e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), ""))
	const sockets, perSocket = 20, 100
	deadline := time.Now().Add(20 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, sockets)
	retrans := make([]int, sockets)
	for s := range sockets {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadBuffer(1 << 20)
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := e2eBurst(conn, p.UDP, s, perSocket, deadline)
			retrans[s] = n
			if err != nil {
				errs <- fmt.Errorf("socket %d: %w", s, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, n := range retrans {
		total += n
	}
	drops, ok := e2eUDPDrops(p.UDP.Port())
	t.Logf("%d requests answered, %d retransmissions needed (a slow answer is retransmitted too), %d datagrams "+
		"dropped by the proxy's socket", sockets*perSocket, total, drops)
	// Loss, not slowness, is the fault: the kernel's own count of datagrams dropped on the proxy's socket
	// (a loaded machine answers late and the clients retransmit, which is fine).
	if _, err := os.Stat("/proc/net/udp"); err == nil && !ok {
		t.Errorf("the proxy's UDP socket %s is not in /proc/net/udp", p.UDP)
	}
	if ok && drops > 0 && e2eBigRcvBuf() {
		t.Errorf("%d datagrams dropped on the proxy's socket although the kernel allows its 4 MiB buffer", drops)
	}
}

// e2eUDPDrops is the drops column of /proc/net/udp for the UDP socket bound to port on 127.0.0.1.
func e2eUDPDrops(port uint16) (int, bool) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, false
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) >= 13 && f[1] == local {
			n, err := strconv.Atoi(f[len(f)-1])
			return n, err == nil
		}
	}
	return 0, false
}

// e2eBigRcvBuf reports whether the kernel lets the proxy have the 4 MiB UDP receive buffer it asks for. With
// the usual 208 KiB cap a burst of 2 000 datagrams can overflow it before the reader drains it, as on any
// UDP server; then the test retransmits like a SIP UAC (timer A) and still requires every answer.
func e2eBigRcvBuf() bool {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n >= 4<<20
}

// e2eBurst sends n REGISTERs with distinct Call-IDs at once, then collects the 404s, retransmitting the
// unanswered ones every 500 ms; it returns the number of retransmissions.
func e2eBurst(conn *net.UDPConn, dst netip.AddrPort, sock, n int, deadline time.Time) (int, error) {
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort().String()
	pending := map[string][]byte{}
	for i := range n {
		cid := fmt.Sprintf("e2e-%d-%d-%s", sock, i, enginetest.RandHex(4))
		pending[cid] = []byte(e2eRequest("REGISTER", "sip:example.org", "UDP", local,
			fmt.Sprintf("z9hG4bK-e2e-%d-%d", sock, i), cid, 70))
	}
	for _, req := range pending {
		if _, err := conn.WriteToUDPAddrPort(req, dst); err != nil {
			return 0, err
		}
	}
	retrans := 0
	buf := make([]byte, 65535)
	next := time.Now().Add(500 * time.Millisecond)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			return retrans, fmt.Errorf("%d of %d requests unanswered within the time limit", len(pending), n)
		}
		wait := next
		if deadline.Before(wait) {
			wait = deadline
		}
		_ = conn.SetReadDeadline(wait)
		k, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				for _, req := range pending {
					retrans++
					_, _ = conn.WriteToUDPAddrPort(req, dst)
				}
				next = time.Now().Add(500 * time.Millisecond)
				continue
			}
			return retrans, err
		}
		resp := string(buf[:k])
		if !strings.HasPrefix(resp, "SIP/2.0 404 No registrar\r\n") {
			return retrans, fmt.Errorf("unexpected reply %q", resp)
		}
		m := e2eCallIDRe.FindStringSubmatch(resp)
		if m == nil {
			return retrans, fmt.Errorf("reply without Call-ID: %q", resp)
		}
		delete(pending, m[1])
	}
	return retrans, nil
}

// TestE2EDefaultConfig: with no flags siplua serves the embedded configuration on 127.0.0.1:5060.
func TestE2EDefaultConfig(t *testing.T) {
	// the embedded configuration listens on 127.0.0.1:5060 (asserted without binding it)
	cfg, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.Core.Listen); got != "[udp:127.0.0.1:5060 tcp:127.0.0.1:5060]" {
		t.Fatalf("embedded listen %s", got)
	}
	// and is served as is, on a port of the test's (-l, as Kamailio's): 5060 may be taken on a test machine
	port := enginetest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := e2eStart(t, "-l", "udp:"+addr, "-l", "tcp:"+addr)
	if want := netip.MustParseAddrPort(addr); p.UDP != want || p.TCP != want {
		t.Fatalf("listening on udp %s tcp %s, want %s for both", p.UDP, p.TCP, want)
	}
	for _, proto := range []string{"UDP", "TCP"} {
		c := p.client(t, proto)
		c.Send(e2eRequest("REGISTER", "sip:127.0.0.1", proto, c.Addr.String(),
			"z9hG4bK-e2e-"+enginetest.RandHex(6), enginetest.RandHex(8)+"@e2e", 70))
		if r := e2eParse(t, c.RecvRaw(e2eWait)); r.First != "SIP/2.0 404 No registrar" {
			t.Errorf("%s REGISTER: %q", proto, r.First)
		}
		c.Send(e2eRequest("OPTIONS", "sip:"+addr, proto, c.Addr.String(),
			"z9hG4bK-e2e-"+enginetest.RandHex(6), enginetest.RandHex(8)+"@e2e", 70))
		if r := e2eParse(t, c.RecvRaw(e2eWait)); r.First != "SIP/2.0 200 Keepalive" {
			t.Errorf("%s OPTIONS to the proxy: %q", proto, r.First)
		}
	}
	if !strings.Contains(p.Log.String(), "config.toml") && !strings.Contains(p.Log.String(), "default.lua") {
		t.Errorf("the log does not name the embedded script:\n%s", p.Log)
	}
}
