package engine_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// bigScript generates a routing script of about n lines in the style of real ones: many small route
// functions with checks and KSR calls, dispatched from ksr_request_route.
func bigScript(n int) string {
	var b strings.Builder
	b.WriteString("-- generated for BenchmarkReload\nlocal routes = {}\n")
	lines, i := 2, 0
	for lines < n-12 {
		fmt.Fprintf(&b, `routes[%d] = function()
	if KSR.is_method("INVITE") then
		KSR.setflag(%d)
	elseif KSR.is_method_in("RB") then
		KSR.resetflag(%d)
	end
	local ok = KSR.maxfwd.process_maxfwd(10)
	if ok < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops %d")
		KSR.x.exit()
	end
	return %d
end
`, i, i%32, i%32, i, i)
		lines += 13
		i++
	}
	fmt.Fprintf(&b, `
function ksr_request_route()
	local n = 0
	for k = 0, 3 do
		n = n + routes[k]()
	end
	if KSR.is_method("OPTIONS") then
		KSR.sl.sl_send_reply(200, "OK " .. n .. " of %d")
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(404, "Not here")
end
`, i)
	return b.String()
}

// BenchmarkReload2000Lines is the time of a whole reload (read, compile, KSR name scan, one test state and
// one state per worker running the top-level chunk, swap) of a 2 000-line script. Goal: <= 50 ms.
func BenchmarkReload2000Lines(b *testing.B) {
	src := bigScript(2000)
	if n := strings.Count(src, "\n"); n < 1990 || n > 2010 {
		b.Fatalf("generated %d lines", n)
	}
	p := enginetest.StartChecked(b, "[modules.sl]\n[modules.maxfwd]\n", src)
	c := p.UDPClient(b)
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		b.Fatalf("got %d %s", r.StatusCode, r.Reason)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Reload(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/reload")
	b.ReportMetric(float64(len(p.E.Workers())), "workers")
}

// BenchmarkThroughputReloading measures OPTIONS answered per second over UDP (a window of requests in
// flight from one client), without reloads and while the script is reloaded every 50 ms — far more often
// than any deployment would.
func BenchmarkThroughputReloading(b *testing.B) {
	for _, every := range []time.Duration{0, time.Second, 50 * time.Millisecond} {
		name := "steady"
		if every > 0 {
			name = "reload-every-" + every.String()
		}
		b.Run(name, func(b *testing.B) {
			p := enginetest.StartChecked(b, "[modules.sl]\n[modules.maxfwd]\n", bigScript(200))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			reloads := 0
			if every > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.NewTicker(every)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							if _, err := p.Reload(); err != nil {
								b.Error(err)
								return
							}
							reloads++
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			lost := pump(b, p, b.N, 64)
			b.StopTimer()
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(reloads), "reloads")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}

// pump sends n OPTIONS keeping window of them in flight and waits for their replies. It returns how many
// were resent because a reply did not come.
func pump(b *testing.B, p *enginetest.Proxy, n, window int) int {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.UDP))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	req := []byte(enginetest.CRLF(fmt.Sprintf("OPTIONS sip:127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bKbench\n"+
		"Max-Forwards: 70\nFrom: <sip:b@%s>;tag=1\nTo: <sip:127.0.0.1>\nCall-ID: bench@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n", local, local)))
	buf := make([]byte, 4096)
	sent, got, lost := 0, 0, 0
	for sent < min(window, n) {
		_, _ = conn.Write(req)
		sent++
	}
	for got < n {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			// a datagram was lost (queue full or socket buffer): send again to keep the window full
			_, _ = conn.Write(req)
			lost++
			continue
		}
		got++
		if sent < n {
			_, _ = conn.Write(req)
			sent++
		}
	}
	return lost
}
