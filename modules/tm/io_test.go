package tm_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

const ioRelayScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return end
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_send_reply(500, "relay failed") end
end`

func ioConfig(dns *enginetest.DNSServer, extra string) string {
	return fmt.Sprintf("[core]\ndns_servers = [%q]\n%s\n[modules.tm]\nfr_timer = 1000\n[modules.sl]\n", dns.Addr, extra)
}

// finalReply reads replies until a final one and returns its status line.
func finalReply(t *testing.T, c *enginetest.Client, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("no final reply: %v", err)
		}
		line, _, _ := strings.Cut(string(r), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// RFC 3263 §4.3: when the first server of a name answers 503, never answers, or cannot be connected to, the
// transaction goes on to the next SRV target.
func TestSRVFailover(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().(*net.TCPAddr).Port
	closed.Close() // connecting to it is refused
	for _, tc := range []struct {
		name      string
		first     func(string) int // the first server's answer (0: none)
		transport string
		deadFirst bool   // the first target is a port nobody listens on
		second    int    // the second server's answer
		want      string // the final reply the caller gets
	}{
		{"503 from the first", func(string) int { return 503 }, "udp", false, 200, "SIP/2.0 200 OK"},
		{"no answer from the first", func(string) int { return 0 }, "udp", false, 200, "SIP/2.0 200 OK"},
		{"tcp connection refused by the first", nil, "tcp", true, 200, "SIP/2.0 200 OK"},
		// the second server's answer stands, not the first one's local 408 of the same rank
		{"no answer from the first, 404 from the second", func(string) int { return 0 }, "udp", false, 404, "SIP/2.0 404 Not Found"},
		{"503 from both", func(string) int { return 503 }, "udp", false, 503, "SIP/2.0 500 Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := enginetest.StartUAS(t, true, tc.first)
			second := enginetest.StartUAS(t, true, func(string) int { return tc.second })
			firstPort := int(first.Addr.Port())
			if tc.deadFirst {
				firstPort = refused
			}
			dns := enginetest.StartDNS(t)
			dns.Add(t, "a.test. 60 IN A 127.0.0.1",
				fmt.Sprintf("_sip._%s.fo.test. 60 IN SRV 10 0 %d a.test.", tc.transport, firstPort),
				fmt.Sprintf("_sip._%s.fo.test. 60 IN SRV 20 0 %d a.test.", tc.transport, second.Addr.Port()))
			p := enginetest.Start(t, ioConfig(dns, ""), ioRelayScript)
			uac := p.UDPClient(t)
			ruri := "sip:bob@fo.test;transport=" + tc.transport
			uac.Send(uac.Request("INVITE", ruri))
			if got := finalReply(t, uac, 5*time.Second); got != tc.want {
				t.Fatalf("final reply %q, want %q", got, tc.want)
			}
			if !tc.deadFirst {
				if r := first.Next(t, time.Second); !strings.HasPrefix(r.Raw, "INVITE ") {
					t.Errorf("first server got %.40q", r.Raw)
				}
			}
			if r := second.Next(t, time.Second); !strings.HasPrefix(r.Raw, "INVITE ") || r.Proto != strings.ToUpper(tc.transport) {
				t.Errorf("second server got %.40q over %s", r.Raw, r.Proto)
			}
		})
	}
}

// A name being looked up holds no worker: with one worker and a DNS server that answers after 1.5 s, a call
// to an address is relayed at once, and the waiting one goes out when the answer comes.
func TestRelayWaitsForDNSWithoutWorker(t *testing.T) {
	uas := enginetest.StartUAS(t, false, nil)
	dns := enginetest.StartDNS(t)
	dns.Add(t, "slow.test. 60 IN A 127.0.0.1", "nx.test. 60 IN TXT \"no address\"")
	dns.Delay("slow.test", 1500*time.Millisecond)
	p := enginetest.Start(t, ioConfig(dns, "workers = 1"), ioRelayScript)
	slow, fast, nx := p.UDPClient(t), p.UDPClient(t), p.UDPClient(t)
	t0 := time.Now()
	slow.Send(slow.Request("INVITE", fmt.Sprintf("sip:slow@slow.test:%d", uas.Addr.Port())))
	nx.Send(nx.Request("INVITE", "sip:bob@nx.test"))
	fast.Send(fast.Request("INVITE", "sip:fast@"+uas.Addr.String()))
	if got := finalReply(t, fast, time.Second); got != "SIP/2.0 200 OK" || time.Since(t0) > time.Second {
		t.Fatalf("call to an address: %q after %v while a name is looked up", got, time.Since(t0))
	}
	if got := finalReply(t, slow, 4*time.Second); got != "SIP/2.0 200 OK" {
		t.Fatalf("call to slow.test: %q", got)
	}
	if time.Since(t0) < 1400*time.Millisecond {
		t.Errorf("slow.test answered after %v, before its DNS answer", time.Since(t0))
	}
	if got := finalReply(t, nx, 3*time.Second); !strings.HasPrefix(got, "SIP/2.0 478 ") {
		t.Errorf("name without address: %q, want 478", got)
	}
}

// A 4000-byte INVITE to a UDP next hop that also listens on TCP goes over TCP (RFC 3261 §18.1.1).
func TestRelayBigInviteOverTCP(t *testing.T) {
	uas := enginetest.StartUAS(t, true, nil)
	p := enginetest.Start(t, "[modules.tm]\n[modules.sl]\n", ioRelayScript)
	uac := p.UDPClient(t)
	body := strings.Repeat("a=x-padding:0123456789\r\n", 170)
	req := strings.Replace(uac.Request("INVITE", "sip:bob@"+uas.Addr.String(), "Content-Type: application/sdp"),
		"Content-Length: 0", fmt.Sprintf("Content-Length: %d", len(body)), 1) + body
	uac.Send(req)
	r := uas.Next(t, 3*time.Second)
	if r.Proto != "TCP" || !strings.Contains(r.Raw, "\r\nVia: SIP/2.0/TCP ") {
		t.Errorf("%d-byte INVITE arrived over %s:\n%.200s", len(r.Raw), r.Proto, r.Raw)
	}
	if got := finalReply(t, uac, 3*time.Second); got != "SIP/2.0 200 OK" {
		t.Errorf("final reply %q", got)
	}
}
