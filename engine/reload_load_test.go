package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// genScript answers OPTIONS with "gen NAME-NAME": the reason is made from a top-level local and a local
// function of the chunk, so a reply mixing two generations would show ("gen alpha-beta"). A global from the
// other script would mean globals leaked across a reload; the reply then says "leak".
func genScript(name string) string {
	other := map[string]string{"alpha": "beta", "beta": "alpha"}[name]
	return fmt.Sprintf(`
local gen = %q
local function suffix() return "-" .. %q end
function ksr_request_route()
	if seen_%s ~= nil then
		KSR.sl.sl_send_reply(200, "leak")
		KSR.x.exit()
	end
	seen_%s = true
	KSR.sl.sl_send_reply(200, "gen " .. gen .. suffix())
end
`, name, name, other, name)
}

// Load test parameters: the issue asks for at least 60 s of SIPp load; the rate stays modest because the
// test machines are small and shared.
const (
	loadSeconds = 60
	loadRate    = 250 // calls (OPTIONS transactions) per second
	loadReloads = 50
)

type sippResult struct {
	exit    int
	reasons map[string]int // reason phrase -> replies, from SIPp's <log> lines
	errLog  string
}

// runSIPp runs the reload UAC scenario against the proxy's UDP socket; it returns when SIPp is done.
func runSIPp(ctx context.Context, t *testing.T, sipp string, p *enginetest.Proxy, calls, rate int) sippResult {
	t.Helper()
	scen, err := filepath.Abs("testdata/reload_uac.xml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logFile, errFile := filepath.Join(dir, "reasons.log"), filepath.Join(dir, "errors.log")
	cmd := exec.CommandContext(ctx, sipp, "-sf", scen, "-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate),
		"-i", "127.0.0.1", "-p", fmt.Sprint(enginetest.FreePort(t)), "-nostdin", "-recv_timeout", "5000", "-timeout", fmt.Sprint(loadSeconds*3), "-timeout_error",
		"-trace_logs", "-log_file", logFile, "-trace_err", "-error_file", errFile, p.UDP.String())
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	res := sippResult{reasons: map[string]int{}}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("sipp: %v", err)
	}
	if f, err := os.Open(logFile); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				res.reasons[l]++
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile(errFile); err == nil {
		res.errLog = string(b)
	}
	if res.exit != 0 {
		tail := out.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		t.Logf("sipp output (tail):\n%s\nerrors:\n%.4000s", tail, res.errLog)
	}
	return res
}

// TestReloadUnderLoad: 60 s of SIPp OPTIONS while the script is reloaded 50 times, alternating two
// scripts. No call fails, every reply is from one whole generation, and afterwards only the last script
// answers.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("60 s load test")
	}
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	t.Parallel()
	p := enginetest.StartChecked(t, "[modules.sl]\n", genScript("alpha"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*loadSeconds*time.Second)
	defer cancel()
	type reloadOutcome struct {
		took time.Duration
		err  error
	}
	outcomes := make(chan reloadOutcome, loadReloads)
	go func() {
		defer close(outcomes)
		interval := loadSeconds * time.Second / (loadReloads + 2)
		for i := range loadReloads {
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return
			}
			p.WriteFile(t, "script.lua", genScript([]string{"beta", "alpha"}[i%2]))
			start := time.Now()
			_, err := p.Reload()
			outcomes <- reloadOutcome{time.Since(start), err}
		}
	}()
	res := runSIPp(ctx, t, sipp, p, loadSeconds*loadRate, loadRate)
	var n int
	var slowest time.Duration
	for o := range outcomes {
		n++
		if o.err != nil {
			t.Errorf("reload %d: %v", n, o.err)
		}
		slowest = max(slowest, o.took)
	}
	if n != loadReloads {
		t.Errorf("%d reloads done, want %d", n, loadReloads)
	}
	if res.exit != 0 {
		t.Errorf("sipp exit status %d: some calls failed", res.exit)
	}
	total := res.reasons["alpha-alpha"] + res.reasons["beta-beta"]
	if total != loadSeconds*loadRate || len(res.reasons) != 2 {
		t.Errorf("replies by reason %v, want %d in total from both scripts only", res.reasons, loadSeconds*loadRate)
	}
	if g := p.E.Generation(); g != loadReloads+1 {
		t.Errorf("generation %d, want %d", g, loadReloads+1)
	}
	// the last reload (number 50) installed alpha: only it answers now
	c := p.UDPClient(t)
	for range 20 {
		expectReason(t, c, "gen alpha-alpha")
	}
	t.Logf("%d replies %v, %d reloads, slowest reload %v", total, res.reasons, n, slowest)
}

// TestBrokenReloadUnderLoad: the same load; in the middle, broken scripts are reloaded. Each is rejected
// with file:line, the old script keeps answering every call.
func TestBrokenReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("60 s load test")
	}
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	t.Parallel()
	p := enginetest.StartChecked(t, "[modules.sl]\n", genScript("alpha"))
	broken := []struct{ script, want string }{
		{"function ksr_request_route()\n  KSR.sl.sl_send_reply(200, \"x\"\n", "script.lua:3: "},
		{"function ksr_request_route()\n  KSR.sl.sl_send_repy(200, \"x\")\nend\n", "script.lua:2: unknown function KSR.sl.sl_send_repy"},
		{"local t = nil\nlocal x = t.field\nfunction ksr_request_route() end\n", "script.lua:2: "},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*loadSeconds*time.Second)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		select {
		case <-time.After(loadSeconds * time.Second / 2):
		case <-ctx.Done():
			return
		}
		for _, b := range broken {
			p.WriteFile(t, "script.lua", b.script)
			_, err := p.Reload()
			if err == nil || !strings.Contains(err.Error(), b.want) {
				errs <- fmt.Errorf("broken script: reload error %v, want %q", err, b.want)
				return
			}
			time.Sleep(time.Second)
		}
	}()
	res := runSIPp(ctx, t, sipp, p, loadSeconds*loadRate, loadRate)
	for err := range errs {
		t.Error(err)
	}
	if res.exit != 0 {
		t.Errorf("sipp exit status %d: some calls failed", res.exit)
	}
	if res.reasons["alpha-alpha"] != loadSeconds*loadRate || len(res.reasons) != 1 {
		t.Errorf("replies by reason %v, want all %d from the first script", res.reasons, loadSeconds*loadRate)
	}
	if ok, failed := p.E.Stats().Reloads(); ok != 0 || failed != uint64(len(broken)) {
		t.Errorf("reloads ok=%d failed=%d, want 0 and %d", ok, failed, len(broken))
	}
	if g := p.E.Generation(); g != 1 {
		t.Errorf("generation %d, want 1", g)
	}
}
