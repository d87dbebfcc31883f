package main

// SIPp interop: a real SIPp UAC against the built binary.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestSIPpRegister404: SIPp sends 5 000 REGISTERs at 500/s over UDP; each must get 404 "No registrar"
// (the scenario checks the reason phrase too) with no failed call.
func TestSIPpRegister404(t *testing.T) {
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	p := e2eStart(t, "-config", e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), ""))
	scenario := e2eAbs(t, "testdata/sipp/register.xml")
	dir := t.TempDir()
	stats := filepath.Join(dir, "stats.csv")
	const calls, rate = 5000, 500

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, p.UDP.String(), "-sf", scenario,
		"-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-rp", "1000", "-l", "2000",
		"-i", "127.0.0.1", "-p", strconv.Itoa(enginetest.FreePort(t)),
		"-cp", strconv.Itoa(enginetest.FreePort(t)), "-mp", strconv.Itoa(enginetest.FreePort(t)),
		"-nostdin", "-timeout", "40s", "-timeout_error",
		"-trace_stat", "-stf", stats, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sipp did not finish within 60s; output tail:\n%s", e2eTail(out, 2000))
	}
	st, serr := e2eSIPpStats(stats)
	if serr != nil {
		t.Fatalf("sipp statistics: %v (sipp: %v); output tail:\n%s", serr, err, e2eTail(out, 2000))
	}
	t.Logf("sipp: %s successful, %s failed, %s retransmissions, %s unexpected, rate %s/s",
		st["SuccessfulCall(C)"], st["FailedCall(C)"], st["Retransmissions(C)"],
		st["FailedUnexpectedMessage(C)"], st["CallRate(C)"])
	if got := st["SuccessfulCall(C)"]; got != strconv.Itoa(calls) {
		t.Errorf("successful calls %s, want %d", got, calls)
	}
	if got := st["FailedCall(C)"]; got != "0" {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Errorf("failed calls %s, want 0; sipp errors:\n%s", got, e2eTail(errs, 2000))
	}
	if err != nil { // exit status 0 means every call succeeded
		t.Errorf("sipp: %v; output tail:\n%s", err, e2eTail(out, 2000))
	}
}

// e2eSIPpStats returns the last row of a SIPp -trace_stat CSV by column name.
func e2eSIPpStats(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return nil, os.ErrNotExist
	}
	names := strings.Split(lines[0], ";")
	vals := strings.Split(lines[len(lines)-1], ";")
	st := map[string]string{}
	for i, n := range names {
		if i < len(vals) {
			st[strings.TrimSpace(n)] = strings.TrimSpace(vals[i])
		}
	}
	return st, nil
}

func e2eTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
