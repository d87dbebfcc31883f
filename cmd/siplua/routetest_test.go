package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// durations makes go-test-style output stable for golden files.
var durations = regexp.MustCompile(`\d+\.\d+s`)

// TestRouteTestExamples runs the route tests of the shipped scripts (scripts/default_test.lua,
// scripts/examples/registrar_test.lua, loadbalancer_test.lua): they run in go test ./... like any Go test.
func TestRouteTestExamples(t *testing.T) {
	for _, cfg := range []string{"../../config.toml", "../../scripts/examples/registrar.toml", "../../scripts/examples/loadbalancer.toml"} {
		t.Run(filepath.Base(cfg), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"test", "-config", cfg}, &stdout, &stderr)
			if code != 0 || !strings.HasPrefix(stdout.String(), "ok  \t") || stderr.Len() > 0 {
				t.Fatalf("siplua test -config %s: exit %d\n%s%s", cfg, code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestRouteTestGolden runs testdata/routetest (passing and failing cases: assertions, a route over
// route_timeout, a script error, an unknown ctl command) with several flags and compares the output and
// the exit code with the golden files (-update rewrites them).
func TestRouteTestGolden(t *testing.T) {
	dir, _ := filepath.Abs("testdata/routetest")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"all", nil},
		{"verbose_run", []string{"-v", "-run", "reply|raw|timeout"}},
		{"only_passing", []string{"-run", "^test_(reply|forward_to_du|raw_message|seeded_drop|script_error_allowed|only_passes)$"}},
		{"pattern", []string{"script_more_test.lua"}},
		{"no_match", []string{"nothing_*_test.lua"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			args := append([]string{"test", "-config", "config.toml"}, c.args...)
			code := run(args, &stdout, &stderr)
			got := durations.ReplaceAllString(checkResult(code, stdout.String(), stderr.String()), "X.XXs")
			compareGolden(t, filepath.Join(dir, "expected_"+c.name+".txt"), got)
		})
	}
}

// TestRouteTestUsage: bad flags exit 2.
func TestRouteTestUsage(t *testing.T) {
	for _, args := range [][]string{{"test", "-run", "("}, {"test", "a", "b"}, {"test", "-nope"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr.String())
		}
	}
}

// TestRouteTest100 measures `siplua test` on 100 cases (a fresh engine each, the registrar example with
// its ten modules): the time goes to the log (the README quotes it); the bound is only against a hang.
func TestRouteTest100(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"registrar.toml", "registrar.lua", "users.csv"} {
		b, err := os.ReadFile(filepath.Join("../../scripts/examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var src strings.Builder
	for i := range 100 {
		fmt.Fprintf(&src, `function test_%03d()
	siptest.ctl("ul.add", "bob", "sip:bob@192.0.2.20:5062")
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:carol@example.com", ruri = "sip:bob@127.0.0.1"})
	siptest.eq(res.relay.dst, "udp:192.0.2.20:5062")
end
`, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "registrar_test.lua"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	code := run([]string{"test", "-config", filepath.Join(dir, "registrar.toml")}, &stdout, &stderr)
	d := time.Since(t0)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	t.Logf("siplua test: 100 cases in %v (%v per case)", d.Round(time.Millisecond), (d / 100).Round(10*time.Microsecond))
	if d > 30*time.Second {
		t.Errorf("100 cases took %v", d)
	}
}

// TestStubsCommand: `siplua stubs` prints what scripts/types/ksr.lua holds (luabind's TestStubsGolden keeps
// that file current), -o writes it, -config narrows it to the loaded modules.
func TestStubsCommand(t *testing.T) {
	want, err := os.ReadFile("../../scripts/types/ksr.lua")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"stubs"}, &stdout, &stderr); code != 0 || stdout.String() != string(want) {
		t.Fatalf("siplua stubs: exit %d, %d bytes, stderr %q; want scripts/types/ksr.lua (%d bytes)", code, stdout.Len(), stderr.String(), len(want))
	}
	out := filepath.Join(t.TempDir(), "ksr.lua")
	if code := run([]string{"stubs", "-o", out, "-config", "../../config.toml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "function KSR.sl.sl_send_reply(code, reason) end") || strings.Contains(string(b), "KSR.dispatcher") {
		t.Errorf("stubs for config.toml: want sl's functions and no dispatcher (not loaded)")
	}
}

// TestRouteTestEmbedded: `siplua test` without -config runs the route tests of the embedded default script
// (scripts/default_test.lua is embedded with it).
func TestRouteTestEmbedded(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run([]string{"test"}, &stdout, &stderr)
	if code != 0 || !strings.HasPrefix(stdout.String(), "ok  \tscripts/default_test.lua\t") {
		t.Fatalf("siplua test: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
