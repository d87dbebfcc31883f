package enginetest

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RunKamailio runs the real Kamailio with the configuration text cfgText in dir, on a free UDP port of
// 127.0.0.1, until the test ends, and waits until an OPTIONS (with the extra headers) gets any answer.
// Conformance tests send the same requests to it and to siplua. Kamailio forks its workers: the whole
// process group is ended, and its log is shown when the test failed.
func RunKamailio(t testing.TB, dir, cfgText string, probeHeaders ...string) netip.AddrPort {
	t.Helper()
	cfg := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	return runKamailio(t, dir, port, []string{"-f", cfg, "-l", "udp:127.0.0.1:" + strconv.Itoa(port)},
		"sip:probe@example.com", probeHeaders)
}

// RunKamailioFile runs the real Kamailio on the configuration file cfgPath (an example kept in the
// repository) with -A NAME=VALUE for each define and SIPPORT set to a free port (the file listens on
// 127.0.0.1:SIPPORT), 64 MB of shared and 8 MB of private memory, until the test ends; it waits until an
// OPTIONS to the proxy itself gets any answer.
func RunKamailioFile(t testing.TB, cfgPath string, defines ...string) netip.AddrPort {
	t.Helper()
	port := FreePort(t)
	args := []string{"-f", cfgPath, "-m", "64", "-M", "8", "-A", "SIPPORT=" + strconv.Itoa(port)}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	return runKamailio(t, t.TempDir(), port, args, "sip:127.0.0.1:"+strconv.Itoa(port), nil)
}

func runKamailio(t testing.TB, dir string, port int, args []string, probeURI string, probeHeaders []string) netip.AddrPort {
	t.Helper()
	bin := NeedProgram(t, "kamailio", "kamailio")
	args = append(args, "-DD", "-E", "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-w", dir)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logPath := filepath.Join(dir, "kamailio.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("kamailio output:\n%s", Tail(string(b), 6000))
		}
	})
	addr := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	probe := NewUDPClient(t, addr)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("kamailio exited before answering:\n%s", Tail(string(b), 3000))
		default:
		}
		probe.Send(probe.Request("OPTIONS", probeURI, probeHeaders...))
		if _, err := probe.TryRecv(200 * time.Millisecond); err == nil {
			return addr
		}
	}
	t.Fatalf("kamailio did not answer on %s", addr)
	return addr
}

// KamailioGlobals is the global part every conformance test's Kamailio configuration starts with: one
// worker, UDP only, no DNS or reverse DNS, no Server or Warning header, logs on stderr (RunKamailio shows
// them when a test fails). A test appends its loadmodule, modparam and routing lines.
const KamailioGlobals = "#!KAMAILIO\ndebug=1\nlog_stderror=yes\nchildren=1\ndisable_tcp=yes\nauto_aliases=no\ndns=no\nrev_dns=no\nserver_signature=no\nsip_warning=0\n"
