package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RTPEngine is a real Sipwise rtpengine daemon (Debian's rtpengine-daemon) started for a test in userspace
// mode on 127.0.0.1 (no kernel module, no iptables): its ng control socket on NG, media ports in
// [PortMin, PortMax]. It is killed when the test ends; its log is shown when the test failed.
type RTPEngine struct {
	NG               netip.AddrPort
	PortMin, PortMax int
	Log              *LogBuffer
}

// StartRTPEngine starts rtpengine and waits until it answers an ng ping (skipping the test when it is not
// installed, failing when CI=true).
func StartRTPEngine(t testing.TB) *RTPEngine {
	t.Helper()
	bin := NeedProgram(t, "rtpengine", "rtpengine-daemon")
	for attempt := 0; ; attempt++ {
		r, err := startRTPEngine(t, bin)
		if err == nil {
			return r
		}
		if attempt == 2 {
			t.Fatalf("rtpengine: %v", err)
		}
	}
}

func startRTPEngine(t testing.TB, bin string) (*RTPEngine, error) {
	base := 20000 + 2*rand.IntN(10000) // 20000..39998: an even media range of 100 ports
	r := &RTPEngine{NG: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(FreePort(t))),
		PortMin: base, PortMax: base + 99, Log: &LogBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--foreground", "--interface=127.0.0.1", "--listen-ng="+r.NG.String(),
		"--port-min="+strconv.Itoa(r.PortMin), "--port-max="+strconv.Itoa(r.PortMax), "--no-fallback",
		"--table=-1", "--log-stderr", "--log-level=6", "--delete-delay=0", "--num-threads=2")
	cmd.Stdout, cmd.Stderr = r.Log, r.Log
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { cancel(); <-done }
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.NG))
	if err != nil {
		stop()
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 512)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			return nil, fmt.Errorf("exited at start:\n%s", r.Log.String())
		default:
		}
		_, _ = c.Write([]byte("probe d7:command4:pinge"))
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && bytes.Contains(buf[:n], []byte("pong")) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("rtpengine log:\n%s", Tail(r.Log.String(), 4000))
				}
			})
			return r, nil
		}
	}
	stop()
	return nil, fmt.Errorf("no pong on %s:\n%s", r.NG, r.Log.String())
}
