package enginetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Browser is what a browser test needs: Node.js, Debian's Chromium and scripts/browser with its npm
// packages (playwright-core, sip.js) installed by `npm ci --prefix scripts/browser`.
type Browser struct {
	Node     string // node executable
	Chromium string // chromium executable (passed to scripts as CHROMIUM)
	Dir      string // absolute path of scripts/browser (launch.js, node_modules)
}

// NeedBrowser skips the test when node, chromium or the npm packages are missing (fails under CI=true, so
// CI never silently skips a browser test).
func NeedBrowser(t testing.TB) Browser {
	t.Helper()
	b := Browser{
		Node:     NeedProgram(t, "node", "nodejs"),
		Chromium: NeedProgram(t, "chromium", "chromium"),
		Dir:      browserDir(),
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "node_modules", "playwright-core")); err != nil {
		msg := "scripts/browser/node_modules missing: run `npm ci --prefix scripts/browser`"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI=true so this is a failure", msg)
		}
		t.Skip(msg)
	}
	return b
}

// Run runs a Node.js script (a path, relative paths are taken from the caller's directory) with
// NODE_PATH set to scripts/browser/node_modules so `require('playwright-core')`, `require('sip.js')` and
// `require(process.env.LAUNCH)` (scripts/browser/launch.js) work from a test's testdata. It returns the
// combined output; the test fails when the script exits non-zero or runs past timeout.
func (b Browser) Run(t testing.TB, timeout time.Duration, script string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Node, script)
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+filepath.Join(b.Dir, "node_modules"),
		"CHROMIUM="+b.Chromium,
		"LAUNCH="+filepath.Join(b.Dir, "launch.js"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	return string(out)
}

// browserDir is scripts/browser of this checkout, found from this file's place (luabind/enginetest).
func browserDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "browser")
}
