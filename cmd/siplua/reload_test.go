package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// The test binary doubles as siplua: with SIPLUA_TEST_MAIN set it runs main's run with its arguments
// (before the testing flags are parsed), so the tests can signal a real process without building one.
func init() {
	if os.Getenv("SIPLUA_TEST_MAIN") != "1" {
		return
	}
	Version = "test"
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// proc is a siplua process serving a configuration in dir.
type proc struct {
	dir  string
	sock string
	udp  netip.AddrPort
	cmd  *exec.Cmd
	log  *enginetest.LogBuffer
}

// startSiplua writes config.toml (a generated [core], [lua] with extraLua, [ctl]) and files (script.lua
// and what it requires) into a fresh short directory (unix socket paths are short) and starts siplua on
// them, waiting until its ctl socket answers.
func startSiplua(t *testing.T, extraLua string, files map[string]string) *proc {
	t.Helper()
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &proc{dir: dir, sock: filepath.Join(dir, "ctl.sock"), udp: freeUDP(t), log: &enginetest.LogBuffer{}}
	for name, content := range files {
		s.write(t, name, content)
	}
	s.write(t, "config.toml", s.config(extraLua))
	s.cmd = exec.Command(os.Args[0], "-config", filepath.Join(dir, "config.toml"))
	s.cmd.Env = append(os.Environ(), "SIPLUA_TEST_MAIN=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			t.Errorf("siplua did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("siplua log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", s.sock); err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("siplua did not open its ctl socket; log:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *proc) config(extra string) string {
	return fmt.Sprintf("[core]\nlisten = [\"udp:%s\"]\nworkers = 2\n[lua]\nscript = \"script.lua\"\n%s[ctl]\nsocket = \"ctl.sock\"\n[modules.sl]\n", s.udp, extra)
}

func (s *proc) write(t *testing.T, name, content string) {
	t.Helper()
	tmp := filepath.Join(s.dir, name+".new")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// waitReason sends OPTIONS until the reply's reason is want (bounded).
func (s *proc) waitReason(t *testing.T, want string) {
	t.Helper()
	c := enginetest.NewUDPClient(t, s.udp)
	deadline := time.Now().Add(5 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
		if r := c.RecvResponse(2 * time.Second); r.Reason == want {
			return
		} else {
			last = r.Reason
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("reason still %q, want %q", last, want)
}

func freeUDP(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func answer(reason string) string {
	return "function ksr_request_route()\n  KSR.sl.sl_send_reply(200, \"" + reason + "\")\nend\n"
}

func TestSIGHUPReloads(t *testing.T) {
	s := startSiplua(t, "", map[string]string{"script.lua": answer("one")})
	s.waitReason(t, "one")
	s.write(t, "script.lua", answer("two"))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitReason(t, "two")
	// a broken script on SIGHUP is rejected and logged with file:line; the old one keeps answering
	s.write(t, "script.lua", "function ksr_request_route()\n  KSR.sl.sl_send_reply(200, \"three\"\n")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.log.String(), "reload failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l := s.log.String(); !strings.Contains(l, "reload failed") || !strings.Contains(l, "script.lua:3:") {
		t.Fatalf("no failed reload with file:line in the log:\n%s", l)
	}
	s.waitReason(t, "two")
}

// [lua] watch reloads when the script or a file it requires changes, and rejects a broken edit.
func TestWatchReloads(t *testing.T) {
	s := startSiplua(t, "watch = true\n", map[string]string{
		"script.lua": "local lib = require(\"lib\")\nfunction ksr_request_route()\n  KSR.sl.sl_send_reply(200, lib.reason)\nend\n",
		"lib.lua":    `return {reason = "lib one"}`,
	})
	s.waitReason(t, "lib one")
	s.write(t, "lib.lua", `return {reason = "lib two"}`)
	s.waitReason(t, "lib two")
	s.write(t, "script.lua", answer("script three"))
	s.waitReason(t, "script three")
	s.write(t, "script.lua", "function ksr_request_route(\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.log.String(), "reload failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(s.log.String(), "script.lua:2:") {
		t.Fatalf("broken edit not reported with file:line:\n%s", s.log.String())
	}
	s.waitReason(t, "script three")
	// the config file is watched too
	s.write(t, "script2.lua", answer("second script"))
	s.write(t, "config.toml", strings.Replace(s.config("watch = true\n"), "script.lua", "script2.lua", 1))
	s.waitReason(t, "second script")
}
