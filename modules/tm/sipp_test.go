package tm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// sippProc is one SIPp process of a test.
type sippProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
	Port int
}

// startSIPp runs SIPp with a scenario from testdata/sipp on 127.0.0.1; args are extra SIPp arguments
// (remote address first for a UAC). It is stopped when the test ends.
func startSIPp(t *testing.T, name, scenario string, args ...string) *sippProc {
	t.Helper()
	bin := enginetest.NeedProgram(t, "sipp", "sip-tester")
	dir := t.TempDir()
	port := enginetest.FreePort(t)
	full := []string{"-sf", filepath.Join("testdata", "sipp", scenario), "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-bind_local", "-nostdin", "-mp", strconv.Itoa(enginetest.FreePort(t)), "-cp", strconv.Itoa(enginetest.FreePort(t)),
		"-trace_err", "-error_file", filepath.Join(dir, "err.log"), "-timeout", "20s", "-recv_timeout", "8000"}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir, _ = os.Getwd()
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp: %v", err)
	}
	s := &sippProc{t: t, name: name, cmd: cmd, out: out, done: make(chan error, 1), Port: port}
	go func() { s.done <- cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			errs, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Logf("%s output:\n%s\nerrors:\n%s", name, lastBytes(out.String(), 3000), lastBytes(string(errs), 3000))
		}
	})
	if strings.Contains(scenario, "uas") { // a UAS must listen before the proxy sends to it; a UAC sends first
		enginetest.WaitBound(t, port, 5*time.Second)
	}
	return s
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// wait waits for SIPp to end and returns nil when it exited 0 (every call succeeded).
func (s *sippProc) wait(timeout time.Duration) error {
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		return nil
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("%s: still running after %s", s.name, timeout)
	}
}

func calleeCSV(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "callee.csv")
	if err := os.WriteFile(p, []byte("SEQUENTIAL\nbob;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readScript(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const tmConfig = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.maxfwd]\n[modules.siputils]\n"

// TestS2Call runs the benchmark scenario S2 unchanged: SIPp UAC → siplua (S2.lua) → SIPp UAS, with
// Record-Route and the ACK and BYE loose-routed.
func TestS2Call(t *testing.T) {
	p := enginetest.Start(t, tmConfig, readScript(t, "../../../scripts/bench/S2.lua")) // the benchmark script itself
	uas := startSIPp(t, "uas", "call-uas.xml", "-m", "3")
	uac := startSIPp(t, "uac", "call-uac.xml", p.UDP.String(), "-m", "3", "-r", "10",
		"-key", "target", "127.0.0.1:"+strconv.Itoa(uas.Port), "-inf", calleeCSV(t))
	if err := uac.wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// relayScript is the Kamailio example's relaying logic with a failure route that sends a 486 to a second
// UAS (%s) and $FR_INV ms fr_inv_timer.
const relayScript = `
function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			KSR.tm.t_relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then KSR.rr.record_route() end
	if FORK ~= "" then KSR.corex.append_branch_uri(FORK) end
	if FR_INV > 0 then KSR.tm.t_set_fr(FR_INV, 2000) end
	KSR.tm.t_on_failure("failure_route")
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end

function failure_route()
	if KSR.tm.t_is_canceled() > 0 then return end
	if NEXT ~= "" and KSR.tm.t_check_status("486") > 0 then
		KSR.seturi(NEXT)
		KSR.tm.t_relay()
	end
end
`

func relay(next, fork string, frInv int) string {
	return fmt.Sprintf("NEXT = %q\nFORK = %q\nFR_INV = %d\n", next, fork, frInv) + relayScript
}

func uasURI(s *sippProc, transport string) string {
	u := "sip:bob@127.0.0.1:" + strconv.Itoa(s.Port)
	if transport != "" {
		u += ";transport=" + transport
	}
	return u
}

// TestSIPpFlows runs SIPp UACs and UASes through the proxy for the stateful flows of issue 5.
func TestSIPpFlows(t *testing.T) {
	type uas struct{ scenario, transport string }
	for _, tc := range []struct {
		name  string
		uas   []uas  // first: the R-URI target; second: NEXT (failure route) or FORK
		use   string // "next" or "fork" for the second UAS
		uac   string
		frInv int
	}{
		{name: "cancel after 180", uas: []uas{{"uas-ring-cancel.xml", ""}}, uac: "uac-cancel.xml"},
		{name: "486 then failure route to UAS2", uas: []uas{{"uas-486.xml", ""}, {"call-uas.xml", ""}}, use: "next", uac: "call-uac.xml"},
		{name: "no answer gives 408", uas: []uas{{"uas-ring-cancel.xml", ""}}, uac: "uac-408.xml", frInv: 500},
		{name: "parallel fork, other branch cancelled", uas: []uas{{"call-uas-slow.xml", ""}, {"uas-ring-cancel.xml", ""}}, use: "fork", uac: "call-uac.xml"},
		{name: "udp in tcp out", uas: []uas{{"call-uas-tcp.xml", "tcp"}}, uac: "call-uac.xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var procs []*sippProc
			for _, u := range tc.uas {
				args := []string{"-m", "1"}
				if u.transport == "tcp" {
					args = append(args, "-t", "t1")
				}
				procs = append(procs, startSIPp(t, "uas "+u.scenario, u.scenario, args...))
			}
			next, fork := "", ""
			if len(procs) > 1 {
				if tc.use == "next" {
					next = uasURI(procs[1], "")
				} else {
					fork = uasURI(procs[1], "")
				}
			}
			p := enginetest.Start(t, tmConfig+"[modules.corex]\n", relay(next, fork, tc.frInv))
			target := "127.0.0.1:" + strconv.Itoa(procs[0].Port)
			if tc.uas[0].transport != "" {
				target += ";transport=" + tc.uas[0].transport
			}
			uac := startSIPp(t, "uac", tc.uac, p.UDP.String(), "-m", "1", "-key", "target", target, "-inf", calleeCSV(t))
			if err := uac.wait(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, s := range procs {
				if err := s.wait(10 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
