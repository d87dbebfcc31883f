package dispatcher_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// sippScript dispatches new INVITEs over set 1 by round robin and routes the dialog's ACK and BYE by
// Record-Route, as a Kamailio load balancer does.
const sippScript = `
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			KSR.tm.t_relay()
			return
		end
		if KSR.is_ACK() and KSR.tm.t_check_trans() > 0 then
			KSR.tm.t_relay()
		end
		return
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return
	end
	if KSR.dispatcher.ds_select_dst(1, 4) < 0 then
		KSR.sl.sl_send_reply(503, "No destination")
		return
	end
	KSR.rr.record_route()
	KSR.tm.t_on_failure("ds_failure")
	KSR.tm.t_relay()
end

function ds_failure()
	if KSR.tm.t_is_canceled() > 0 then return end
	KSR.dispatcher.ds_mark_dst()
	if KSR.dispatcher.ds_next_dst() > 0 then
		KSR.tm.t_relay()
	end
end
`

// runSIPp starts SIPp and returns a wait function (nil when it ended with every call successful).
func runSIPp(t *testing.T, name string, args ...string) func(time.Duration) error {
	t.Helper()
	bin := enginetest.NeedProgram(t, "sipp", "sip-tester")
	dir := t.TempDir()
	full := append([]string{"-bind_local", "-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "err.log"),
		"-timeout", "25s", "-recv_timeout", "8000"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, full...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			s := out.String()
			if len(s) > 6000 {
				s = s[len(s)-6000:]
			}
			t.Logf("%s output:\n%s", name, s)
		}
	})
	return func(d time.Duration) error {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		case <-time.After(d):
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s: still running after %s", name, d)
		}
	}
}

// TestSIPpRoundRobin: a SIPp UAC places 300 calls (INVITE, ACK, BYE) through siplua to three SIPp UAS
// behind set 1 with round robin. Each UAS ends after exactly 100 calls (-m 100), so the test passes only
// when every call completed and the calls were spread evenly.
func TestSIPpRoundRobin(t *testing.T) {
	enginetest.NeedProgram(t, "sipp", "sip-tester")
	var ports []int
	var waits []func(time.Duration) error
	var cfg strings.Builder
	for i := 0; i < 3; i++ {
		port := enginetest.FreePort(t)
		ports = append(ports, port)
		cfg.WriteString(dst(1, "sip:127.0.0.1:"+strconv.Itoa(port), ""))
	}
	for i, port := range ports {
		waits = append(waits, runSIPp(t, fmt.Sprintf("uas%d", i), "-sf", filepath.Join("testdata", "sipp", "call-uas.xml"), "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "100",
			"-mp", strconv.Itoa(enginetest.FreePort(t))))
	}
	var dsts []string
	for _, port := range ports {
		dsts = append(dsts, dst(1, "sip:127.0.0.1:"+strconv.Itoa(port), ""))
	}
	conf := strings.Replace(config("", dsts...), "[modules.hdr]", "[modules.hdr]\n[modules.rr]\n[modules.siputils]", 1)
	conf = strings.Replace(conf, "fr_timer = 400", "fr_timer = 5000", 1)
	p := enginetest.Start(t, conf, sippScript)
	for _, port := range ports {
		enginetest.WaitBound(t, port, 5*time.Second)
	}
	uac := runSIPp(t, "uac", "-sf", filepath.Join("testdata", "sipp", "call-uac.xml"), "-i", "127.0.0.1", "-p", strconv.Itoa(enginetest.FreePort(t)),
		"-mp", strconv.Itoa(enginetest.FreePort(t)), "-m", "300", "-r", "100", "-l", "50", p.UDP.String())
	if err := uac(30 * time.Second); err != nil {
		t.Fatalf("UAC: %v", err)
	}
	for i, w := range waits {
		if err := w(10 * time.Second); err != nil {
			t.Errorf("UAS %d did not get exactly 100 complete calls: %v", i, err)
		}
	}
}
