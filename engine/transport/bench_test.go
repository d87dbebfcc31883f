package transport_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// startBenchProxy is a one-worker stateless relay with every transport.
func startBenchProxy(b *testing.B) (*enginetest.Proxy, *pki) {
	pk := newPKI(b)
	files := map[string]string{"script.lua": `function ksr_request_route() KSR.forward() end`}
	for k, v := range pk.files {
		files[k] = v
	}
	p := enginetest.StartFiles(b, "[core]\nworkers = 1\ntcp_max_connections = 20000\nlisten = [\"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\", \"wss:127.0.0.1:0\"]\n"+tlsTable, files)
	return p, pk
}

// BenchmarkHandshake: TLS and WSS connections accepted per second (TCP connect, TLS 1.3 handshake with an
// ECDSA P-256 certificate, for WSS the HTTP upgrade too), client and server in this process.
func BenchmarkHandshake(b *testing.B) {
	p, pk := startBenchProxy(b)
	cfg := clientTLS(pk)
	cfg.ClientSessionCache = nil // full handshakes, no resumption
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"tls", func() (net.Conn, error) { return enginetest.DialTLS(p.Addr(engine.TLS), cfg) }},
		{"wss", func() (net.Conn, error) { return enginetest.DialWS(p.Addr(engine.WSS), enginetest.WSOptions{TLS: cfg}) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c, err := tc.dial()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
		})
	}
}

// BenchmarkRelay: one MESSAGE relayed statelessly to a UDP sink, from a UDP client and from a WSS client
// (one kept connection). cpu-us/op is the process's user+system CPU per message: proxy and client
// together (the WSS client masks and encrypts, about what the proxy spends to unmask and decrypt).
func BenchmarkRelay(b *testing.B) {
	p, pk := startBenchProxy(b)
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	_ = sink.SetReadBuffer(4 << 20)
	for _, tc := range []struct {
		name string
		c    func() *enginetest.Client
	}{
		{"udp-udp", func() *enginetest.Client { return p.UDPClient(b) }},
		{"wss-udp", func() *enginetest.Client {
			return enginetest.NewWSClient(b, p.Addr(engine.WSS), enginetest.WSOptions{TLS: clientTLS(pk)})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := tc.c()
			req := enginetest.CRLF(c.Request("MESSAGE", "sip:bob@"+sink.LocalAddr().String()))
			buf := make([]byte, 65535)
			const window = 16
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(window, b.N-sent)
				for i := 0; i < n; i++ {
					c.Send(req)
				}
				for i := 0; i < n; i++ {
					_ = sink.SetReadDeadline(time.Now().Add(2 * time.Second))
					if _, _, err := sink.ReadFromUDP(buf); err != nil {
						b.Fatal(err)
					}
				}
				sent += n
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleConnMemory: the proxy's memory (Go heap in use + goroutine stacks) per idle TLS and WSS
// connection, each having sent one OPTIONS. The clients run in a child process (this test binary, see
// TestHelperHoldConns), so only the proxy's side is measured.
func BenchmarkIdleConnMemory(b *testing.B) {
	p, pk := startBenchProxy(b)
	dir := b.TempDir()
	if err := os.WriteFile(dir+"/ca.pem", []byte(pk.ca.PEM), 0o600); err != nil {
		b.Fatal(err)
	}
	const n = 1000
	for _, proto := range []engine.Proto{engine.TLS, engine.WSS} {
		b.Run(proto.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				before, sb := inUse(), stackInUse()
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldConns$")
				cmd.Env = append(os.Environ(), "HOLD_ADDR="+p.Addr(proto).String(), "HOLD_PROTO="+proto.String(),
					"HOLD_N="+strconv.Itoa(n), "HOLD_CA="+dir+"/ca.pem")
				stdin, _ := cmd.StdinPipe()
				out, _ := cmd.StdoutPipe()
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				sc := bufio.NewScanner(out)
				ready := false
				for sc.Scan() {
					if sc.Text() == "ready" {
						ready = true
						break
					}
				}
				if !ready {
					b.Fatal("helper did not get its connections up")
				}
				time.Sleep(500 * time.Millisecond) // the last OPTIONS answered, the workers idle
				after, sa := inUse(), stackInUse()
				if f := os.Getenv("HEAPPROF"); f != "" {
					hf, _ := os.Create(f + "." + proto.String())
					_ = pprof.WriteHeapProfile(hf)
					hf.Close()
				}
				b.ReportMetric(float64(sa-sb)/n, "stack-bytes/conn")
				stdin.Close()
				_ = cmd.Wait()
				b.ReportMetric(float64(after-before)/n, "bytes/conn")
			}
		})
	}
}

func stackInUse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

func inUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// TestHelperHoldConns is BenchmarkIdleConnMemory's child: it opens HOLD_N connections, sends an OPTIONS
// on each, waits for the answers, prints "ready" and holds them until stdin closes.
func TestHelperHoldConns(t *testing.T) {
	addr := os.Getenv("HOLD_ADDR")
	if addr == "" {
		t.Skip("helper process for BenchmarkIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("HOLD_N"))
	pem, err := os.ReadFile(os.Getenv("HOLD_CA"))
	if err != nil {
		t.Fatal(err)
	}
	ca := enginetest.NewCA(t, "unused")
	ca.Pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
	ap := netip.MustParseAddrPort(addr)
	var cs []*enginetest.Client
	for i := 0; i < n; i++ {
		var c *enginetest.Client
		if os.Getenv("HOLD_PROTO") == "wss" {
			c = enginetest.NewWSClient(t, ap, enginetest.WSOptions{TLS: cfg})
		} else {
			c = enginetest.NewTLSClient(t, ap, cfg)
		}
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1:9"))
		cs = append(cs, c)
	}
	_ = cs
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = strings.TrimSpace
}
