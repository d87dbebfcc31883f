package main

// Helpers of the end-to-end tests: they build the real siplua binary once, run it as a child process on
// kernel-chosen loopback ports (read back from its "listening" log lines) and talk raw SIP to it.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

var (
	e2eBinOnce sync.Once
	e2eBinPath string
	e2eBinErr  error
)

// e2eBinary builds ./cmd/siplua once per test process. The binary goes to a directory named after this
// checkout, replaced atomically, so repeated runs do not pile up copies in the temp directory.
func e2eBinary(t testing.TB) string {
	t.Helper()
	e2eBinOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			e2eBinErr = err
			return
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(os.TempDir(), "siplua-e2e-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e2eBinErr = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("siplua.%d.tmp", os.Getpid()))
		goTool := "go"
		if _, err := exec.LookPath(goTool); err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		// under `go test -race` the binary is built with -race too, so that the engine's concurrency under
		// real load is checked: a race makes the process exit non-zero, which stop reports
		args, name := []string{"build", "-o", tmp}, "siplua"
		if e2eRaceEnabled() {
			args, name = append(args, "-race"), "siplua-race"
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			e2eBinErr = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		e2eBinPath = filepath.Join(dir, name)
		e2eBinErr = os.Rename(tmp, e2eBinPath)
	})
	if e2eBinErr != nil {
		t.Fatalf("building siplua: %v", e2eBinErr)
	}
	return e2eBinPath
}

// e2eRaceEnabled reports whether this test binary was built with -race.
func e2eRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// e2eLog collects the child's stderr and lets a test wait for a line.
type e2eLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	cond  chan struct{} // closed and replaced on every new line
}

func (l *e2eLog) add(line string) {
	l.mu.Lock()
	l.buf.WriteString(line + "\n")
	l.lines = append(l.lines, line)
	close(l.cond)
	l.cond = make(chan struct{})
	l.mu.Unlock()
}

func (l *e2eLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// wait returns the first line matching re, waiting at most d.
func (l *e2eLog) wait(re *regexp.Regexp, d time.Duration) (string, bool) {
	deadline := time.After(d)
	seen := 0
	for {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if re.MatchString(l.lines[seen]) {
				s := l.lines[seen]
				l.mu.Unlock()
				return s, true
			}
		}
		ch := l.cond
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return "", false
		}
	}
}

// e2eProc is a running siplua process.
type e2eProc struct {
	cmd    *exec.Cmd
	UDP    netip.AddrPort
	TCP    netip.AddrPort
	Log    *e2eLog
	done   chan struct{} // closed when the process has exited
	err    error         // its Wait result
	killed bool          // ended by kill (SIGKILL) on purpose
	closed bool          // stop ran
}

// kill ends the process with SIGKILL, as a crash or `kill -9` would: no shutdown work (no final snapshot).
func (p *e2eProc) kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// e2eConfig writes a configuration that listens on UDP and TCP 127.0.0.1 with kernel-chosen ports and runs
// script (an absolute path), with the given extra TOML appended.
func e2eConfig(t testing.TB, script, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`[core]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
log_format = "text"

[lua]
script = %q
route_timeout = 2000 # the default 100 ms is for production; a -race binary on a loaded machine is slower

[modules.sl]
[modules.maxfwd]
[modules.siputils]
[modules.corex]
%s`, script, extra)
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eAbs returns the absolute path of a file of this repository given relative to cmd/siplua.
func e2eAbs(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	e2eListenRe  = regexp.MustCompile(`msg=listening .*socket=(udp|tcp):(\S+)`)
	e2eServingRe = regexp.MustCompile(`msg=serving`)
)

// e2eStart runs the binary with args, waits until it serves and answers, and stops it with SIGTERM when the
// test ends, failing the test unless it exits with status 0 within 10 s.
func e2eStart(t testing.TB, args ...string) *e2eProc {
	t.Helper()
	bin := e2eBinary(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	if os.Getenv("GORACE") == "" {
		// a -race binary otherwise sleeps 1 s at exit
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &e2eProc{cmd: cmd, Log: &e2eLog{cond: make(chan struct{})}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start siplua: %v", err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.Log.add(sc.Text())
		}
	}()
	go func() {
		<-readDone // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })

	if _, ok := p.Log.wait(e2eServingRe, 15*time.Second); !ok {
		t.Fatalf("siplua did not start serving within 15s; log:\n%s", p.Log)
	}
	for _, l := range strings.Split(p.Log.String(), "\n") {
		m := e2eListenRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ap, err := netip.ParseAddrPort(m[2])
		if err != nil {
			t.Fatalf("listening line %q: %v", l, err)
		}
		if m[1] == "udp" && !p.UDP.IsValid() {
			p.UDP = ap
		} else if m[1] == "tcp" && !p.TCP.IsValid() {
			p.TCP = ap
		}
	}
	if !p.UDP.IsValid() || !p.TCP.IsValid() {
		t.Fatalf("no udp and tcp listening lines in the log:\n%s", p.Log)
	}
	// it answers: any reply to an OPTIONS ping will do (scripts differ in what they answer)
	c := enginetest.NewUDPClient(t, p.UDP)
	c.Send(c.Request("OPTIONS", "sip:"+p.UDP.String()))
	if _, err := c.TryRecv(5 * time.Second); err != nil {
		t.Fatalf("siplua does not answer an OPTIONS ping: %v; log:\n%s", err, p.Log)
	}
	return p
}

// stop sends SIGTERM and checks the graceful exit; the log is shown when the test failed.
func (p *e2eProc) stop(t testing.TB) {
	t.Helper()
	if p.closed {
		return
	}
	p.closed = true
	select {
	case <-p.done:
		if !p.killed {
			t.Errorf("siplua exited before the test ended: %v", p.err)
		}
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("siplua did not exit cleanly after SIGTERM: %v", p.err)
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("siplua did not exit within 10s of SIGTERM")
		}
	}
	if strings.Contains(p.Log.String(), "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race in siplua")
	}
	if t.Failed() {
		t.Logf("siplua log:\n%s", p.Log)
	}
}

// e2eClient opens a client of the given protocol ("UDP" or "TCP") to the process.
func (p *e2eProc) client(t testing.TB, proto string) *enginetest.Client {
	t.Helper()
	if proto == "TCP" {
		return enginetest.NewTCPClient(t, p.TCP)
	}
	return enginetest.NewUDPClient(t, p.UDP)
}

// e2eMsg is a SIP message split into its first line and its header lines, in order, as on the wire.
type e2eMsg struct {
	First string
	Hdrs  [][2]string // name as written, value trimmed
	Body  string
}

func e2eParse(t testing.TB, raw []byte) e2eMsg {
	t.Helper()
	head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok {
		t.Fatalf("message without an empty line after the headers: %q", raw)
	}
	lines := strings.Split(head, "\r\n")
	m := e2eMsg{First: lines[0], Body: body}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("bad header line %q in %q", l, raw)
		}
		m.Hdrs = append(m.Hdrs, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return m
}

// All returns the values of every header named name (case-insensitive).
func (m e2eMsg) All(name string) []string {
	var out []string
	for _, h := range m.Hdrs {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// Get returns the only value of header name, failing the test when it is absent or repeated.
func (m e2eMsg) Get(t testing.TB, name string) string {
	t.Helper()
	v := m.All(name)
	if len(v) != 1 {
		t.Fatalf("header %s: want exactly one, got %q in\n%s", name, v, m)
	}
	return v[0]
}

func (m e2eMsg) String() string {
	var b strings.Builder
	b.WriteString(m.First + "\n")
	for _, h := range m.Hdrs {
		b.WriteString(h[0] + ": " + h[1] + "\n")
	}
	return b.String()
}

// e2eParam returns the value of ;name[=value] in a header value after its URI ("", false when absent).
func e2eParam(v, name string) (string, bool) {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	parts := strings.Split(v, ";")
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return val, true
		}
	}
	return "", false
}

// e2eRequest builds a request with the given top Via sent-by (host:port), branch and Call-ID.
func e2eRequest(method, ruri, proto, sentBy, branch, callID string, maxFwd int) string {
	return fmt.Sprintf("%s %s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;rport;branch=%s\r\n"+
		"Max-Forwards: %d\r\n"+
		"From: \"Alice\" <sip:alice@example.org>;tag=e2e-from-1\r\n"+
		"To: <sip:alice@example.org>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 7 %s\r\n"+
		"Contact: <sip:alice@%s>\r\n"+
		"User-Agent: siplua-e2e\r\n"+
		"Content-Length: 0\r\n\r\n",
		method, ruri, proto, sentBy, branch, maxFwd, callID, method, sentBy)
}
