package enginetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SIPpLimit bounds one SIPp process: a scenario that hangs is killed by then even if the test never
// calls Wait, so a broken proxy costs a test its time budget, not the whole package's.
const SIPpLimit = 30 * time.Second

// SIPp is one real SIPp process of a test, bound to 127.0.0.1:Port. It is killed when the test ends;
// when the test failed, its output and error log are logged then.
type SIPp struct {
	Name string
	Port int
	cmd  *exec.Cmd
	out  *LogBuffer // a LogBuffer is safe to read while exec copies into it
	errs string     // the -error_file path
	done chan error
	stop context.CancelFunc
	// retried: it could not bind and another SIPp took its place (its output is not logged)
	retried bool
}

// StartSIPp runs SIPp with the scenario file scenarioPath (relative to the test's directory or absolute)
// on 127.0.0.1, on a free SIP port and free media ports, tracing errors to a file of its own; args are
// further SIPp arguments, the remote host:port first for a UAC (later arguments override the defaults:
// -timeout 20s, -recv_timeout 8000). It skips the test when sipp is not installed (fails when CI=true).
//
// A free port can be taken by another test between FreePort and SIPp's bind: a SIPp that ends at once
// because a port is in use is started again on other ports. The control port is left to SIPp, which
// moves on to the next one when its default is taken.
func StartSIPp(t testing.TB, name, scenarioPath string, args ...string) *SIPp {
	t.Helper()
	bin := NeedProgram(t, "sipp", "sip-tester")
	for attempt := 1; ; attempt++ {
		s := startSIPp(t, bin, name, scenarioPath, args)
		if attempt < 3 && s.portTaken(isUAS(scenarioPath, args)) {
			t.Logf("sipp %s: a port was taken, starting it again", name)
			continue
		}
		return s
	}
}

func startSIPp(t testing.TB, bin, name, scenarioPath string, args []string) *SIPp {
	t.Helper()
	dir := t.TempDir()
	s := &SIPp{Name: name, Port: FreePort(t), out: &LogBuffer{}, errs: filepath.Join(dir, "err.log"), done: make(chan error, 1)}
	full := append([]string{"-sf", scenarioPath, "-i", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-bind_local", "-nostdin",
		"-mp", strconv.Itoa(FreePort(t)), "-trace_err", "-error_file", s.errs, "-timeout", "20s", "-recv_timeout", "8000"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), SIPpLimit)
	s.stop = cancel
	s.cmd = exec.CommandContext(ctx, bin, full...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() { s.done <- s.cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		cancel() // kills it if still running
		if t.Failed() && !s.retried {
			t.Logf("sipp %s output:\n%s\nerrors:\n%s", name, Tail(s.out.String(), 3000), Tail(string(s.ErrorLog()), 3000))
		}
	})
	return s
}

// isUAS tells a SIPp that waits for calls (no remote address, or a UAS scenario) from a UAC, which sends
// first and, over TCP, may never listen.
func isUAS(scenarioPath string, args []string) bool {
	return strings.Contains(filepath.Base(scenarioPath), "uas") || len(args) == 0 || strings.HasPrefix(args[0], "-")
}

// portTaken waits until a UAS has bound its SIP port (so that a peer does not send to it before; a UAC
// gets 100 ms) and reports whether SIPp ended first because one of its ports was in use.
func (s *SIPp) portTaken(uas bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	if !uas {
		deadline = time.Now().Add(100 * time.Millisecond)
	}
	for {
		select {
		case err := <-s.done:
			s.done <- err // for Wait
			s.retried = err != nil && strings.Contains(s.out.String()+string(s.ErrorLog()), "Address already in use")
			return s.retried
		default:
		}
		if (uas && Bound(s.Port)) || time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Bound reports whether a UDP socket is bound, or a TCP socket listens, on port of 127.0.0.1 or the
// wildcard address, read from /proc/net/udp and /proc/net/tcp (it never binds the port itself, which
// could take it from the process being waited for). Where /proc is not readable it reports true: the
// caller then goes on at once.
func Bound(port int) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/tcp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return true
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 4 || (fs[1] != "0100007F"+suffix && fs[1] != "00000000"+suffix) {
				continue
			}
			if f == "/proc/net/udp" || fs[3] == "0A" { // TCP: only a listening socket (state 0A)
				return true
			}
		}
	}
	return false
}

// WaitBound waits until Bound(port), for an external peer a test started itself.
func WaitBound(t testing.TB, port int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("a peer bound to 127.0.0.1:%d", port), func() bool { return Bound(port) })
}

// Addr is 127.0.0.1:Port, SIPp's SIP address.
func (s *SIPp) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Wait waits at most timeout for SIPp to end and returns nil when it exited 0 (every call succeeded);
// past the timeout it kills SIPp and says so.
func (s *SIPp) Wait(timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err // a second Wait sees the same result
		if err != nil {
			return fmt.Errorf("sipp %s: %w", s.Name, err)
		}
		return nil
	case <-time.After(timeout):
		s.stop()
		return fmt.Errorf("sipp %s: still running after %s", s.Name, timeout)
	}
}

// ErrorLog is what SIPp wrote to its -error_file so far (the unexpected messages of failed calls).
func (s *SIPp) ErrorLog() []byte {
	b, _ := os.ReadFile(s.errs)
	return b
}

// Output is SIPp's stdout and stderr so far.
func (s *SIPp) Output() string { return s.out.String() }

// SIPpInjection writes a SIPp injection file (-inf) reading its rows in sequence, one row per line
// (fields separated by ';'), and returns its path.
func SIPpInjection(t testing.TB, rows ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for _, r := range rows {
		b.WriteString(r + ";\n")
	}
	p := filepath.Join(t.TempDir(), "inject.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// SIPpUsers writes an injection file of n users named user0 … user<n-1> ([field0] in a scenario).
func SIPpUsers(t testing.TB, n int) string {
	t.Helper()
	rows := make([]string, n)
	for i := range rows {
		rows[i] = "user" + strconv.Itoa(i)
	}
	return SIPpInjection(t, rows...)
}

// Tail is the last n bytes of s: the end of a long log, where a failure shows.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
