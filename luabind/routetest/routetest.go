// Package routetest runs route unit tests (`siplua test`): Lua files named *_test.lua next to the routing
// script, whose global functions test_* build SIP messages with the siptest table, run them through the
// script and its modules offline (engine.ListenOffline: no socket, every send captured) and assert on what
// the proxy did: the reply, the relayed request, branches, exit/drop, log lines, pseudo-variables.
//
// Each test gets a fresh engine (fresh module state, from a fresh configuration), so tests do not depend on
// each other or on their order. Modules run without their persistence: snapshot files are neither read nor
// written and a Redis backend becomes the memory one.
package routetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	lua "github.com/yuin/gopher-lua"
)

// Options are `siplua test`'s flags.
type Options struct {
	// Load returns a freshly decoded configuration (new module instances) each time it is called.
	Load func() (*engine.Config, error)
	// Pattern is a glob of test files relative to the script's directory; "" = the script's own: NAME_test.lua
	// and NAME_*_test.lua for NAME.lua (several scripts can share a directory).
	Pattern string
	Run     *regexp.Regexp // only the tests whose name matches; nil = all
	Verbose bool
	Out     io.Writer
	// TestTimeout bounds one test function's own Lua code (not its routes, which route_timeout bounds).
	TestTimeout time.Duration
}

// Summary counts what ran.
type Summary struct {
	Files, Tests, Failed int
	Elapsed              time.Duration
}

// Run runs the test files and prints go test style output; the summary says whether anything failed. An
// error means the tests could not be run at all (no configuration).
func Run(o Options) (Summary, error) {
	if o.TestTimeout <= 0 {
		o.TestTimeout = 10 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	cfg, err := o.Load()
	if err != nil {
		return Summary{}, err
	}
	patterns := []string{o.Pattern}
	if o.Pattern == "" {
		base := strings.TrimSuffix(path.Base(cfg.Lua.Script), ".lua")
		patterns = []string{base + "_test.lua", base + "_*_test.lua"}
	}
	var files []testFile
	for _, p := range patterns {
		fs, err := testFiles(cfg, p)
		if err != nil {
			return Summary{}, err
		}
		files = append(files, fs...)
	}
	var sum Summary
	start := time.Now()
	if len(files) == 0 {
		fmt.Fprintf(o.Out, "?   \t%s\t[no test files]\n", displayName(filepath.Join(filepath.Dir(cfg.ScriptPath()), patterns[0])))
		return sum, nil
	}
	for _, f := range files {
		sum.Files++
		n, failed := runFile(o, cfg, f)
		sum.Tests += n
		sum.Failed += failed
	}
	sum.Elapsed = time.Since(start)
	if sum.Failed > 0 {
		fmt.Fprintln(o.Out, "FAIL")
	}
	return sum, nil
}

// testFile is one *_test.lua: how to read it and how to name it.
type testFile struct {
	name string // as printed and as Lua positions name it
	read func() ([]byte, error)
}

func testFiles(cfg *engine.Config, pattern string) ([]testFile, error) {
	var out []testFile
	if cfg.FS != nil {
		matches, err := fs.Glob(cfg.FS, path.Join(path.Dir(cfg.Lua.Script), pattern))
		if err != nil {
			return nil, fmt.Errorf("test file pattern %q: %w", pattern, err)
		}
		for _, m := range matches {
			out = append(out, testFile{name: m, read: func() ([]byte, error) { return fs.ReadFile(cfg.FS, m) }})
		}
		return out, nil
	}
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(cfg.ScriptPath()), pattern))
	if err != nil {
		return nil, fmt.Errorf("test file pattern %q: %w", pattern, err)
	}
	sort.Strings(matches)
	for _, m := range matches {
		out = append(out, testFile{name: displayName(m), read: func() ([]byte, error) { return os.ReadFile(m) }})
	}
	return out, nil
}

// displayName is p relative to the working directory when it lies below it.
func displayName(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

type testFunc struct {
	name string
	fn   *lua.LFunction
	line int
}

// runFile loads one test file in its own Lua state and runs its tests; it returns how many ran and failed.
func runFile(o Options, cfg *engine.Config, f testFile) (ran, failed int) {
	start := time.Now()
	fail := func(msg string) (int, int) {
		fmt.Fprintf(o.Out, "--- FAIL: %s\n    %s\nFAIL\t%s\t%.3fs\n", f.name, msg, f.name, time.Since(start).Seconds())
		return 1, 1
	}
	src, err := f.read()
	if err != nil {
		return fail(err.Error())
	}
	r := &runner{o: o, file: f.name}
	L := lua.NewState(lua.Options{CallStackSize: 256})
	defer L.Close()
	r.L = L
	L.SetGlobal("siptest", r.siptestTable())
	fn, err := L.Load(strings.NewReader(string(src)), f.name)
	if err != nil {
		return fail(strings.TrimSpace(err.Error()))
	}
	L.Push(fn)
	if err := r.pcall(0); err != nil {
		return fail("running the top-level code: " + err.Error())
	}
	var tests []testFunc
	L.G.Global.ForEach(func(k, v lua.LValue) {
		name := k.String()
		if fn, ok := v.(*lua.LFunction); ok && strings.HasPrefix(name, "test_") && fn.Proto != nil {
			tests = append(tests, testFunc{name: name, fn: fn, line: fn.Proto.LineDefined})
		}
	})
	sort.Slice(tests, func(i, j int) bool { return tests[i].line < tests[j].line })
	for _, t := range tests {
		if o.Run != nil && !o.Run.MatchString(t.name) {
			continue
		}
		ran++
		if o.Verbose {
			fmt.Fprintf(o.Out, "=== RUN   %s\n", t.name)
		}
		t0 := time.Now()
		msgs := r.runTest(t)
		d := time.Since(t0).Seconds()
		switch {
		case len(msgs) > 0 && msgs[0] != "":
			failed++
			fmt.Fprintf(o.Out, "--- FAIL: %s (%.2fs)\n", t.name, d)
			for _, m := range msgs {
				fmt.Fprintf(o.Out, "    %s\n", strings.ReplaceAll(m, "\n", "\n    "))
			}
		case o.Verbose:
			for _, m := range msgs[min(1, len(msgs)):] {
				fmt.Fprintf(o.Out, "    %s\n", m)
			}
			fmt.Fprintf(o.Out, "--- PASS: %s (%.2fs)\n", t.name, d)
		}
	}
	if ran == 0 && len(tests) == 0 {
		fmt.Fprintf(o.Out, "ok  \t%s\t%.3fs [no tests: define global functions named test_*]\n", f.name, time.Since(start).Seconds())
		return 0, 0
	}
	if failed > 0 {
		fmt.Fprintf(o.Out, "FAIL\t%s\t%.3fs\n", f.name, time.Since(start).Seconds())
	} else {
		fmt.Fprintf(o.Out, "ok  \t%s\t%.3fs\n", f.name, time.Since(start).Seconds())
	}
	return ran, failed
}

// runner is the state of one test file: its Lua state and the test running now.
type runner struct {
	o     Options
	file  string
	L     *lua.LState
	cur   *testCase
	noted bool // the offline parameter changes were shown
}

// testCase is one test's engine, created on the first siptest call that needs it.
type testCase struct {
	e     *engine.Engine
	cfg   *engine.Config
	sink  *logSink
	notes []string // siptest.log lines and offline adjustments, shown with -v or on failure

	mu   sync.Mutex
	sent []engine.Sent
	seq  int         // messages built, for unique Call-IDs and branches
	last *engine.Msg // the message routed last (its script state counts the exits)
}

// runTest runs one test function; the first element of the result is the failure ("" = passed), the
// others are notes.
func (r *runner) runTest(t testFunc) []string {
	tc := &testCase{}
	r.cur = tc
	defer func() {
		if tc.e != nil {
			tc.e.StopOffline()
		}
		r.cur = nil
	}()
	ctx, cancel := context.WithTimeout(context.Background(), r.o.TestTimeout)
	defer cancel()
	r.L.SetContext(ctx)
	defer r.L.RemoveContext()
	r.L.Push(t.fn)
	err := r.pcall(0)
	res := []string{""}
	if err != nil {
		msg := err.Error()
		if ctx.Err() != nil {
			msg = fmt.Sprintf("%s:%d: test did not finish within %v", r.file, t.line, r.o.TestTimeout)
		}
		res[0] = msg
	}
	return append(res, tc.notes...)
}

// pcall calls the function on the stack; the error is the Lua error value's text (file:line: message),
// without a traceback.
func (r *runner) pcall(nargs int) error {
	errfn := r.L.NewFunction(func(L *lua.LState) int { return 1 })
	err := r.L.PCall(nargs, 0, errfn)
	if err == nil {
		return nil
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		return errors.New(strings.TrimSpace(ae.Object.String()))
	}
	return err
}

// engine returns the current test's engine, creating it.
func (r *runner) engine() *testCase {
	tc := r.cur
	if tc == nil {
		r.L.RaiseError("siptest: messages can be built and run only inside a test function (test_*)")
	}
	if tc.e != nil {
		return tc
	}
	cfg, err := r.o.Load()
	if err != nil {
		r.L.RaiseError("siptest: configuration: %v", err)
	}
	if notes := offlineParams(cfg); len(notes) > 0 && !r.noted {
		r.noted = true // the same for every test of the file: said once
		tc.notes = append(tc.notes, notes...)
	}
	cfg.Core.Workers = 1
	tc.cfg = cfg
	tc.sink = &logSink{}
	log := slog.New(&captureHandler{sink: tc.sink})
	e, err := engine.New(cfg, func(cfg *engine.Config) (engine.Script, error) {
		s, err := luabind.CompileScript(cfg, log)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, log)
	if err != nil {
		r.L.RaiseError("siptest: starting the script: %v", err)
	}
	e.ListenOffline(func(s engine.Sent) {
		tc.mu.Lock()
		tc.sent = append(tc.sent, s)
		tc.mu.Unlock()
	})
	tc.e = e
	return tc
}

// takeSent returns what was captured since the last call.
func (tc *testCase) takeSent() []engine.Sent {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	s := tc.sent
	tc.sent = nil
	return s
}

// offlineParams turns off what would make a test touch the world: snapshot files (read at start, written
// on a timer and at stop) and Redis backends. It returns a note per change.
func offlineParams(cfg *engine.Config) []string {
	var notes []string
	for _, l := range cfg.Mods.List {
		for _, ch := range neutralize(l.Inst) {
			notes = append(notes, fmt.Sprintf("offline: modules.%s.%s", l.Name, ch))
		}
	}
	return notes
}
