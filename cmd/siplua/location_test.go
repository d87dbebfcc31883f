package main

// Locations across processes: two siplua processes sharing one real redis-server, a restart, a Redis
// outage, and a memory backend killed with SIGKILL. Everything on 127.0.0.1.

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// locationNode starts a siplua process that runs the S3 routing script (registrar save, lookup, t_relay)
// with the given usrloc settings.
func locationNode(t *testing.T, usrloc string) *e2eProc {
	t.Helper()
	extra := "[modules.tm]\n[modules.rr]\n[modules.registrar]\n[modules.usrloc]\n" + usrloc + "\n[ctl]\nenabled = false\n"
	return e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/bench/S3.lua"), extra))
}

// locationUA is a phone: a UDP socket on 127.0.0.1 that registers through a proxy and answers INVITEs.
type locationUA struct {
	t    *testing.T
	conn *net.UDPConn
	seq  int
}

func newLocationUA(t *testing.T) *locationUA {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &locationUA{t: t, conn: c}
}

func (u *locationUA) addr() string { return u.conn.LocalAddr().String() }

// register sends a REGISTER for bob through proxy p with the given expiry and returns the status line.
func (u *locationUA) register(p *e2eProc, expires int) string {
	u.t.Helper()
	u.seq++
	req := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;rport;branch=z9hG4bK-loc%[3]d-%[4]s\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:bob@%[1]s>;tag=r%[3]d\r\nTo: <sip:bob@%[1]s>\r\nCall-ID: loc-reg-%[4]s\r\n"+
		"CSeq: %[3]d REGISTER\r\nContact: <sip:bob@%[2]s>;expires=%[5]d\r\nContent-Length: 0\r\n\r\n",
		p.UDP, u.addr(), u.seq, enginetest.RandHex(6), expires)
	if _, err := u.conn.WriteToUDPAddrPort([]byte(req), p.UDP); err != nil {
		u.t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		_ = u.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			u.t.Fatalf("no reply to REGISTER via %s: %v", p.UDP, err)
		}
		if line := e2eStatusLine(buf[:n]); strings.HasPrefix(line, "SIP/2.0 ") {
			return strings.TrimPrefix(line, "SIP/2.0 ")
		}
	}
}

// call sends an INVITE to bob through proxy p from a fresh caller socket. With the phone reachable it
// answers 486 at the phone, and the result is the caller's final status; "404 Not Found" when the proxy
// found no contact.
func (u *locationUA) call(p *e2eProc) string {
	u.t.Helper()
	caller := enginetest.NewUDPClient(u.t, p.UDP)
	caller.Send(caller.Request("INVITE", "sip:bob@"+p.UDP.String()))
	buf := make([]byte, 65535)
	_ = u.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break // nothing reached the phone
		}
		inv := e2eParse(u.t, buf[:n])
		if !strings.HasPrefix(inv.First, "INVITE ") {
			continue // the proxy's ACK of the previous call's 486, a late reply to a REGISTER
		}
		if !strings.HasPrefix(inv.First, "INVITE sip:bob@"+u.addr()+" ") {
			u.t.Fatalf("the phone got %q, want the INVITE with the contact as R-URI", inv.First)
		}
		reply := "SIP/2.0 486 Busy Here\r\n"
		for _, h := range inv.Hdrs {
			switch strings.ToLower(h[0]) {
			case "via", "from", "call-id", "cseq":
				reply += h[0] + ": " + h[1] + "\r\n"
			case "to":
				reply += "To: " + h[1] + ";tag=uas\r\n"
			}
		}
		if _, err := u.conn.WriteToUDPAddrPort([]byte(reply+"Content-Length: 0\r\n\r\n"), from); err != nil {
			u.t.Fatal(err)
		}
		break
	}
	for {
		r := caller.RecvResponse(3 * time.Second)
		if r.StatusCode >= 200 {
			return fmt.Sprintf("%d %s", r.StatusCode, r.Reason)
		}
	}
}

func e2eStatusLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

// eventually retries f until it returns want or d has passed; it returns the last result.
func eventually(d time.Duration, want string, f func() string) string {
	var got string
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if got = f(); got == want || time.Now().After(deadline) {
			return got
		}
	}
}

// TestLocationSharedByTwoProcesses: two siplua processes, one redis-server. A phone registers through A and
// a call through B reaches it; an unregister through B is seen by A within a second; both stop and a new
// process still finds the binding; redis-server killed: REGISTER gets 500, calls are still routed from the
// cache; redis-server back: registrations work again. Nothing crashes.
func TestLocationSharedByTwoProcesses(t *testing.T) {
	redis := enginetest.StartRedis(t)
	ul := fmt.Sprintf("backend = \"redis\"\nredis_url = %q\nredis_prefix = \"e2e:\"\n", redis.URL())
	a, b := locationNode(t, ul), locationNode(t, ul)
	ua := newLocationUA(t)

	if got := ua.register(a, 600); got != "200 OK" {
		t.Fatalf("REGISTER via A: %s", got)
	}
	if got := ua.call(b); got != "486 Busy Here" {
		t.Fatalf("call via B after REGISTER via A: %s, want the phone's 486", got)
	}
	if got := ua.call(a); got != "486 Busy Here" { // A has it cached now
		t.Fatalf("call via A: %s", got)
	}
	if got := ua.register(b, 0); got != "200 OK" {
		t.Fatalf("unregister via B: %s", got)
	}
	if got := eventually(time.Second, "404 Not Found", func() string { return ua.call(a) }); got != "404 Not Found" {
		t.Fatalf("A still routes to the unregistered phone after 1 s: %s", got)
	}

	if got := ua.register(a, 600); got != "200 OK" {
		t.Fatalf("REGISTER via A again: %s", got)
	}
	a.stop(t)
	b.stop(t)
	c := locationNode(t, ul)
	if got := ua.call(c); got != "486 Busy Here" {
		t.Fatalf("call via a new process after both stopped: %s", got)
	}

	redis.Kill()
	if got := ua.register(c, 600); got != "500 Server Internal Error" {
		t.Errorf("REGISTER with Redis down: %s, want 500", got)
	}
	if got := ua.call(c); got != "486 Busy Here" {
		t.Errorf("call with Redis down: %s, want it routed from the cache", got)
	}
	redis.Start() // empty: no persistence
	if got := eventually(3*time.Second, "200 OK", func() string { return ua.register(c, 600) }); got != "200 OK" {
		t.Fatalf("REGISTER after Redis came back: %s", got)
	}
	if got := ua.call(c); got != "486 Busy Here" {
		t.Fatalf("call after Redis came back: %s", got)
	}
}

// TestLocationSurvivesKill: the memory backend writes its snapshot every second; a process killed with
// SIGKILL (no shutdown, no final snapshot) and started again still routes to the phone.
func TestLocationSurvivesKill(t *testing.T) {
	snap := t.TempDir() + "/usrloc.snapshot"
	ul := fmt.Sprintf("snapshot_file = %q\nsnapshot_interval = 1\n", snap)
	p := locationNode(t, ul)
	ua := newLocationUA(t)
	if got := ua.register(p, 600); got != "200 OK" {
		t.Fatalf("REGISTER: %s", got)
	}
	time.Sleep(2500 * time.Millisecond) // at least one snapshot interval after the REGISTER
	p.kill()
	q := locationNode(t, ul)
	if got := ua.call(q); got != "486 Busy Here" {
		t.Fatalf("call after kill -9 and restart: %s, want the phone's 486", got)
	}
}
