package registrar_test

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

	"github.com/siplua/siplua/engine/enginetest"
)

// sipp runs SIPp with a scenario from testdata/sipp on 127.0.0.1 and returns its port and a wait
// function (nil when every call succeeded).
func sipp(t *testing.T, name, scenario string, args ...string) (int, func(time.Duration) error) {
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
		}
		if t.Failed() {
			errs, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Logf("%s output:\n%s\nerrors:\n%.3000s", name, tail(out.String(), 3000), errs)
		}
	})
	time.Sleep(50 * time.Millisecond) // let it bind
	return port, func(d time.Duration) error {
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestSIPpRegisterAndCall runs the S3 benchmark's script and scenarios: SIPp registers N users whose
// Contact is a SIPp UAS, then a SIPp UAC calls each user through the proxy, which finds the UAS by
// lookup("location"); every call (INVITE, ACK, BYE loose-routed) must complete.
func TestSIPpRegisterAndCall(t *testing.T) {
	const users = 20
	script, err := os.ReadFile("../../scripts/bench/S3.lua")
	if err != nil {
		t.Fatal(err)
	}
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.maxfwd]\n[modules.siputils]\n[modules.usrloc]\n[modules.registrar]\n", string(script))
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := range users {
		fmt.Fprintf(&csv, "user%d;\n", i)
	}
	inf := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(inf, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	uasPort, uasWait := sipp(t, "uas", "call-uas.xml", "-m", strconv.Itoa(users))
	target := "127.0.0.1:" + strconv.Itoa(uasPort)
	_, regWait := sipp(t, "register", "register.xml", p.UDP.String(), "-m", strconv.Itoa(users), "-r", "200",
		"-key", "target", target, "-inf", inf)
	if err := regWait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	_, uacWait := sipp(t, "uac", "call-uac.xml", p.UDP.String(), "-m", strconv.Itoa(users), "-r", "50",
		"-key", "target", p.UDP.String(), "-inf", inf)
	if err := uacWait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uasWait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
