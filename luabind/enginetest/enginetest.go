// Package enginetest starts a real siplua engine on random loopback ports with a configuration and a script
// given as strings, and talks raw SIP to it, so that a module test is ten lines.
package enginetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
)

// Proxy is a running engine.
type Proxy struct {
	E   *engine.Engine
	UDP netip.AddrPort // the UDP socket
	TCP netip.AddrPort // the TCP socket
	Log *LogBuffer
	Dir string // where config.toml and script.lua were written
}

// Start writes configTOML and script to a temp dir and serves them until the test ends. A configuration
// without a [core] listen key listens on UDP and TCP 127.0.0.1 with kernel-chosen ports; without [lua]
// script it runs script.lua.
func Start(t testing.TB, configTOML, script string) *Proxy {
	t.Helper()
	return start(t, configTOML, map[string]string{"script.lua": script}, false)
}

// StartFiles is Start with more files (Lua modules the script requires): names are relative to the
// directory of config.toml.
func StartFiles(t testing.TB, configTOML string, files map[string]string) *Proxy {
	t.Helper()
	return start(t, configTOML, files, false)
}

// StartChecked is Start with the script validated as siplua serves it (and as `siplua -c` checks it: the
// static KSR name scan too), for its startup and its reloads.
func StartChecked(t testing.TB, configTOML, script string) *Proxy {
	t.Helper()
	return start(t, configTOML, map[string]string{"script.lua": script}, true)
}

func start(t testing.TB, configTOML string, files map[string]string, checked bool) *Proxy {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(configTOML, "[lua]") {
		configTOML = "[lua]\nscript = \"script.lua\"\n" + configTOML
	}
	// The 100 ms route budget is for production; under -race on a loaded 2-core machine a plain route can
	// take longer, so tests that do not test the budget get 2 s (still far below a hung route).
	if !strings.Contains(configTOML, "route_timeout") {
		configTOML = strings.Replace(configTOML, "[lua]\n", "[lua]\nroute_timeout = 2000\n", 1)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(configTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if !hasListen(configTOML) {
		cfg.Listen = []engine.ListenAddr{
			{Proto: engine.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
			{Proto: engine.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		}
	}
	lb := &LogBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	compile := func(c *engine.Config) (engine.Script, error) { return luabind.CompileScript(c, log) }
	if checked {
		compile = luabind.Checked(log)
	}
	e, err := engine.New(cfg, compile, log)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	if err := e.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &Proxy{E: e, Log: lb, Dir: dir}
	for _, l := range e.Listeners() {
		switch {
		case l.Proto == engine.UDP && !p.UDP.IsValid():
			p.UDP = l.Addr
		case l.Proto == engine.TCP && !p.TCP.IsValid():
			p.TCP = l.Addr
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("engine did not stop within 10s")
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", lb.String())
		}
	})
	return p
}

func hasListen(toml string) bool {
	for _, l := range strings.Split(toml, "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == "listen" {
			return true
		}
	}
	return false
}

// LogBuffer collects the proxy's log lines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Client is a UDP or TCP SIP peer on 127.0.0.1.
type Client struct {
	t     testing.TB
	Proto string // "UDP" or "TCP"
	udp   *net.UDPConn
	tcp   net.Conn
	ws    bool // tcp is a WebSocket: one frame per message
	raddr netip.AddrPort
	Addr  netip.AddrPort // local address
	rd    []byte
	buf   []byte
}

// UDPClient opens a UDP socket on 127.0.0.1 that talks to the proxy's UDP socket.
func (p *Proxy) UDPClient(t testing.TB) *Client { return NewUDPClient(t, p.UDP) }

// TCPClient connects to the proxy's TCP socket.
func (p *Proxy) TCPClient(t testing.TB) *Client { return NewTCPClient(t, p.TCP) }

// NewUDPClient opens a UDP socket on 127.0.0.1 that sends to raddr.
func NewUDPClient(t testing.TB, raddr netip.AddrPort) *Client {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, Proto: "UDP", udp: c, raddr: raddr, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// NewTCPClient connects to raddr.
func NewTCPClient(t testing.TB, raddr netip.AddrPort) *Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", raddr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, Proto: "TCP", tcp: c, raddr: raddr, Addr: c.LocalAddr().(*net.TCPAddr).AddrPort()}
}

// Send writes raw SIP (LF line ends are turned into CRLF when the text has no CR).
func (c *Client) Send(raw string) {
	c.t.Helper()
	b := []byte(CRLF(raw))
	var err error
	if c.udp != nil {
		_, err = c.udp.WriteToUDPAddrPort(b, c.raddr)
	} else if c.ws {
		err = wsutil.WriteClientText(c.tcp, b)
	} else {
		_, err = c.tcp.Write(b)
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// CRLF turns LF line ends into CRLF unless the text already has CRs.
func CRLF(s string) string {
	if strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// RecvRaw reads one message, failing the test after timeout.
func (c *Client) RecvRaw(timeout time.Duration) []byte {
	c.t.Helper()
	b, err := c.TryRecv(timeout)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return b
}

// TryRecv reads one message or returns the error (a timeout when nothing came).
func (c *Client) TryRecv(timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	if c.buf == nil {
		c.buf = make([]byte, 65535)
	}
	if c.udp != nil {
		_ = c.udp.SetReadDeadline(deadline)
		n, _, err := c.udp.ReadFromUDPAddrPort(c.buf)
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), c.buf[:n]...), nil
	}
	_ = c.tcp.SetReadDeadline(deadline)
	if c.ws {
		for {
			b, op, err := wsutil.ReadServerData(c.tcp)
			if err != nil {
				return nil, err
			}
			if op == ws.OpText || op == ws.OpBinary {
				return b, nil
			}
		}
	}
	for {
		if msg, rest, ok := splitFrame(c.rd); ok {
			c.rd = rest
			return msg, nil
		}
		n, err := c.tcp.Read(c.buf)
		if err != nil {
			return nil, err
		}
		c.rd = append(c.rd, c.buf[:n]...)
	}
}

func splitFrame(b []byte) ([]byte, []byte, bool) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, b, false
	}
	head := b[:i+4]
	n := 0
	for _, l := range strings.Split(string(head), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && (strings.EqualFold(strings.TrimSpace(k), "content-length") || strings.EqualFold(strings.TrimSpace(k), "l")) {
			fmt.Sscan(strings.TrimSpace(v), &n)
		}
	}
	if len(b) < len(head)+n {
		return nil, b, false
	}
	return b[:len(head)+n], b[len(head)+n:], true
}

// Recv reads and parses one message.
func (c *Client) Recv(timeout time.Duration) sip.Message {
	c.t.Helper()
	raw := c.RecvRaw(timeout)
	m, err := sip.ParseMessage(raw)
	if err != nil {
		c.t.Fatalf("parse %q: %v", raw, err)
	}
	return m
}

// RecvResponse reads one message and fails unless it is a response.
func (c *Client) RecvResponse(timeout time.Duration) *sip.Response {
	c.t.Helper()
	m := c.Recv(timeout)
	r, ok := m.(*sip.Response)
	if !ok {
		c.t.Fatalf("expected a response, got %s", m.String())
	}
	return r
}

// Request builds a request from this client: Via with rport and a fresh branch, From with a tag, To, a
// fresh Call-ID, CSeq 1, Max-Forwards 70, the extra header lines and Content-Length.
func (c *Client) Request(method, ruri string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;rport;branch=z9hG4bK%s\r\n", c.Proto, c.Addr, RandHex(8))
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:alice@%s>;tag=%s\r\n", c.Addr, RandHex(4))
	fmt.Fprintf(&b, "To: <%s>\r\n", ruri)
	fmt.Fprintf(&b, "Call-ID: %s@enginetest\r\n", RandHex(8))
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
	for _, h := range extra {
		b.WriteString(strings.TrimRight(h, "\r\n") + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Msg parses raw SIP into a message context of a proxy that does not serve (its sockets are bound, so
// replies can be sent and myself checks work). For unit tests of module functions.
func Msg(t testing.TB, p *Proxy, raw string) *engine.Msg {
	t.Helper()
	m, err := p.E.NewMsg([]byte(CRLF(raw)), netip.MustParseAddrPort("127.0.0.1:5099"), engine.UDP)
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	return m
}

// NeedProgram returns the path of an external program, skipping the test when it is missing, or failing it
// when CI=true, so CI never silently skips.
func NeedProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (install the Debian package %s); CI=true so this is a failure", name, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s to run this test", name, pkg)
	return ""
}

// FreePort returns a port free on 127.0.0.1 for both UDP and TCP, for external peers (SIPp needs -p, or it
// takes 5060 when free).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}
