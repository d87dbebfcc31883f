package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

var update = flag.Bool("update", false, "rewrite the golden files (siplua -c and ctl outputs)")

// checkResult is what `siplua -c` printed and returned, in the golden files' form.
func checkResult(code int, stdout, stderr string) string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout, stderr)
}

// TestCheckGolden runs `siplua -c -config config.toml` in each testdata/check/<case> directory (so the paths
// printed are relative and stable) and compares with the case's expected.txt; -update rewrites them.
func TestCheckGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/check/*/config.toml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, cfg := range cases {
		dir, _ := filepath.Abs(filepath.Dir(cfg))
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			code := run([]string{"-c", "-config", "config.toml"}, &stdout, &stderr)
			got := checkResult(code, stdout.String(), stderr.String())
			compareGolden(t, filepath.Join(dir, "expected.txt"), got)
			switch {
			case code == 0 && (stdout.String() != "config OK\n" || onlyWarnings(stderr.String()) != ""):
				t.Errorf("exit 0 must print only \"config OK\" on stdout (and warnings on stderr)")
			case code != 0 && (code != 1 || stdout.Len() > 0 || stderr.Len() == 0):
				t.Errorf("a failed check must exit 1 with its problems on stderr only")
			}
			if code != 0 {
				for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
					if !strings.HasPrefix(l, "config.toml") && !strings.HasPrefix(l, "script.lua") {
						t.Errorf("problem not in file:line: message form: %q", l)
					}
				}
			}
		})
	}
}

// TestCheckEmbeddedDefault checks the embedded default configuration and script.
func TestCheckEmbeddedDefault(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-c"}, &stdout, &stderr); code != 0 || stdout.String() != "config OK\n" {
		t.Fatalf("siplua -c: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestCheckListenFlag: -l replaces [core] listen and is checked like it.
func TestCheckListenFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-c", "-l", "udp:127.0.0.1:5070"}, &stdout, &stderr); code != 0 {
		t.Fatalf("siplua -c -l udp:127.0.0.1:5070: exit %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	code := run([]string{"-c", "-l", "sctp:127.0.0.1:5070"}, &stdout, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), `-l "sctp:127.0.0.1:5070": `) {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming the -l value", code, stderr.String())
	}
}

// TestCheckMissingConfig names the file that cannot be read.
func TestCheckMissingConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run([]string{"-c", "-config", "nope.toml"}, &stdout, &stderr)
	want := "nope.toml: cannot read the configuration file: no such file or directory\n"
	if code != 1 || stderr.String() != want {
		t.Fatalf("exit %d, stderr %q; want exit 1, %q", code, stderr.String(), want)
	}
}

// TestCheckBinary builds the real binary and runs the good case with it.
func TestCheckBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "siplua")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		dir  string
		code int
	}{{"good", 0}, {"unknown_function", 1}} {
		cmd := exec.Command(bin, "-c", "-config", "config.toml")
		cmd.Dir = filepath.Join("testdata", "check", c.dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code {
			t.Errorf("%s: exit %d, want %d", c.dir, code, c.code)
		}
		want, err := os.ReadFile(filepath.Join(cmd.Dir, "expected.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if got := checkResult(code, stdout.String(), stderr.String()); got != string(want) {
			t.Errorf("%s: binary output differs from expected.txt:\n%s\nwant:\n%s", c.dir, got, want)
		}
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	enginetest.Golden(t, path, got, *update)
}

// onlyWarnings returns the lines of s that are not "file:line: warning: ..." lines.
func onlyWarnings(s string) string {
	var rest []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" && !strings.Contains(l, ": warning: ") {
			rest = append(rest, l)
		}
	}
	return strings.Join(rest, "\n")
}

// TestCheckStrict: with -strict the warnings of the lint fixture are errors (exit 1, nothing on stdout),
// and a clean script still passes.
func TestCheckStrict(t *testing.T) {
	for _, c := range []struct {
		dir  string
		code int
	}{{"lint_traps", 1}, {"good", 0}, {"guarded_modules", 1}} {
		dir, _ := filepath.Abs(filepath.Join("testdata/check", c.dir))
		t.Run(c.dir, func(t *testing.T) {
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			code := run([]string{"-c", "-strict", "-config", "config.toml"}, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, stdout.String(), stderr.String())
			}
			if code != 0 && stdout.Len() > 0 {
				t.Errorf("a failed check prints nothing on stdout: %q", stdout.String())
			}
			if c.dir == "lint_traps" && strings.Count(stderr.String(), ": warning: ") != 11 {
				t.Errorf("want the 11 warnings of expected.txt, got:\n%s", stderr.String())
			}
		})
	}
}

// TestCheckKamailioExample checks Kamailio's own kamailio-basic-kemi-lua.lua (read from the installed
// kamailio package, not copied) with the modules it needs loaded: the modules it checks for first (auth,
// auth_db, permissions, nathelper, rtpproxy) may be missing without any "unknown function" or "not loaded"
// report, and with every module siplua has loaded the script is clean, warnings included.
func TestCheckKamailioExample(t *testing.T) {
	const script = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua"
	if _, err := os.Stat(script); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (the kamailio package is installed by .ci/run)", script, err)
		}
		t.Skipf("kamailio's example script is not installed: %v", err)
	}
	base := `[core]
listen = ["udp:127.0.0.1:5060"]
[lua]
script = "` + script + `"
[modules.sl]
[modules.tm]
[modules.tmx]
[modules.rr]
[modules.maxfwd]
[modules.siputils]
[modules.corex]
[modules.kx]
[modules.hdr]
[modules.sanity]
[modules.usrloc]
snapshot_file = ""
[modules.registrar]
[modules.htable.tables.ipban]
[modules.pike]
`
	for _, c := range []struct{ name, extra string }{
		{"without_optional_modules", ""},
		{"every_module", "[modules.auth]\n[modules.auth_db]\n[modules.permissions]\n[modules.nathelper]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "kamailio-example.toml")
			if err := os.WriteFile(cfg, []byte(base+c.extra), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"-c", "-strict", "-config", cfg}, &stdout, &stderr)
			if code != 0 || stdout.String() != "config OK\n" || stderr.Len() > 0 {
				t.Fatalf("siplua -c -strict on Kamailio's example: exit %d\n%s%s", code, stdout.String(), stderr.String())
			}
		})
	}
}
