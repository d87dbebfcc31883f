// Package luabind runs siplua's Lua routing scripts: it compiles a script once, builds a sandboxed
// gopher-lua state per worker with the KSR table made from the loaded modules' exports, and calls the
// KEMI entry functions.
package luabind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Script is a compiled routing script with the modules it runs against.
type Script struct {
	cfg   *engine.Config
	name  string // the script's path as shown in errors
	proto *lua.FunctionProto
	log   *slog.Logger

	mu      sync.Mutex
	modules map[string]*lua.FunctionProto // required files, compiled once
}

// Compile reads and compiles cfg's script. It is an engine.Compiler.
func Compile(cfg *engine.Config) (engine.Script, error) {
	s, err := CompileScript(cfg, slog.Default())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// CompileScript is Compile with a logger for print and KSR.log.
func CompileScript(cfg *engine.Config, log *slog.Logger) (*Script, error) {
	name := cfg.Lua.Script
	src, err := cfg.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: read script: %w", cfg.ScriptPath(), err)
	}
	proto, err := compile(src, cfg.ScriptPath())
	if err != nil {
		return nil, err
	}
	s := &Script{cfg: cfg, name: cfg.ScriptPath(), proto: proto, log: log.With("module", "lua"), modules: map[string]*lua.FunctionProto{}}
	// a first state proves the top-level chunk runs and ksr_request_route exists
	st, err := s.NewState(-1)
	if err != nil {
		return nil, err
	}
	st.Close()
	return s, nil
}

// SyntaxError is a Lua compile error with its place.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

func compile(src []byte, name string) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Token != "" {
				msg = fmt.Sprintf("%s near '%s'", msg, pe.Token)
			}
			line := pe.Pos.Line
			if line == parse.EOF {
				line = bytes.Count(src, []byte("\n")) + 1
				msg += " at end of file"
			}
			return nil, &SyntaxError{File: name, Line: line, Msg: strings.TrimSpace(msg)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("%s: compile: %w", name, err)
	}
	return proto, nil
}

// requireProto returns the compiled chunk of a required module, from the script's directory.
func (s *Script) requireProto(mod string) (*lua.FunctionProto, string, error) {
	if strings.Contains(mod, "..") || strings.HasPrefix(mod, "/") {
		return nil, "", fmt.Errorf("module name %q is not allowed", mod)
	}
	rel := path.Join(path.Dir(s.cfg.Lua.Script), strings.ReplaceAll(mod, ".", "/")+".lua")
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.modules[rel]; ok {
		return p, rel, nil
	}
	src, err := s.cfg.ReadFile(rel)
	if err != nil {
		return nil, rel, err
	}
	p, err := compile(src, s.cfg.Resolve(rel))
	if err != nil {
		return nil, rel, err
	}
	s.modules[rel] = p
	return p, rel, nil
}

// State is one worker's Lua state.
type State struct {
	L       *lua.LState
	script  *Script
	msg     *engine.Msg
	depth   int // routes running (they nest: t_relay runs the branch route inside the request route)
	request *lua.LFunction
	reply   *lua.LFunction    // nil when the script has no ksr_reply_route ([kemi] reply_route_callback)
	kemi    [3]*lua.LFunction // [kemi] callbacks by engine.KemiKind, nil when not defined (kemi.go)
	errfn   *lua.LFunction
	exit    *lua.LUserData // KSR.x.exit sentinel
	drop    *lua.LUserData // KSR.x.drop sentinel
	exits   int            // routes ended by KSR.x.exit (read by siplua test)
	other   *lua.LTable    // the globals of KSR.app_lua.dostring/dofile chunks, made on first use (applua.go)
}

// Exits counts the routes of this state that ended with KSR.x.exit().
func (st *State) Exits() int { return st.exits }

// Memory bounds of a state: the call stack (a deep recursion fails with "stack overflow") and the value
// stack (registry; "registry overflow"), so a runaway script gets an error instead of taking the process.
const (
	callStackSize   = 256
	registrySize    = 1024 * 8
	registryMaxSize = registrySize // no growth: a full registry raises "registry overflow"
)

func newLState() *lua.LState {
	return lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: callStackSize, RegistrySize: registrySize, RegistryMaxSize: registryMaxSize})
}

// runChunk runs a compiled top-level chunk within limit (route_timeout): an endless loop there is an error,
// not a process that never starts or a reload that never ends.
func runChunk(L *lua.LState, proto *lua.FunctionProto, limit time.Duration) (err error, timedOut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	L.SetContext(ctx)
	defer L.RemoveContext()
	L.Push(L.NewFunctionFromProto(proto))
	err = L.PCall(0, 0, nil)
	return err, err != nil && ctx.Err() != nil
}

// NewState builds a sandboxed state with the KSR table and runs the script's top-level chunk.
func (s *Script) NewState(worker int) (engine.State, error) {
	st, err := s.newState()
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *Script) newState() (*State, error) {
	st := &State{script: s}
	if err := st.build(); err != nil {
		return nil, err
	}
	return st, nil
}

// build makes st's Lua state: libraries, KSR, the top-level chunk (bounded by route_timeout).
func (st *State) build() error {
	s := st.script
	L := newLState()
	st.L = L
	st.other = nil // app_lua's dostring globals belong to the state they were made in
	st.exit, st.drop = L.NewUserData(), L.NewUserData()
	st.errfn = L.NewFunction(func(L *lua.LState) int { return 1 }) // keep the error value, skip tracebacks
	openSafeLibs(L, s)
	if err := st.buildKSR(); err != nil {
		L.Close()
		return err
	}
	limit := s.cfg.Lua.RouteBudget()
	if err, timedOut := runChunk(L, s.proto, limit); err != nil {
		L.Close()
		if timedOut {
			where := s.name
			if m := whereRe.FindStringSubmatch(luaErrText(err)); m != nil {
				where = m[1]
			}
			return fmt.Errorf("%s: top-level chunk did not finish within %v (lua.route_timeout)", where, limit)
		}
		return fmt.Errorf("%s: running top-level chunk: %s", s.name, luaErrText(err))
	}
	fn, ok := L.GetGlobal("ksr_request_route").(*lua.LFunction)
	if !ok {
		L.Close()
		return fmt.Errorf("%s: function ksr_request_route is not defined", s.name)
	}
	st.request = fn
	st.loadKemi() // kemi.go: ksr_reply_route or [kemi] reply_route_callback, and the other callbacks
	return nil
}

// Close frees the state.
func (st *State) Close() { st.L.Close() }

// RequestRoute runs ksr_request_route for m.
func (st *State) RequestRoute(m *engine.Msg) error { return st.run(st.request, m, nil) }

// ReplyRoute runs ksr_reply_route for m if the script defines it.
func (st *State) ReplyRoute(m *engine.Msg) error {
	if st.reply == nil {
		return nil
	}
	return st.run(st.reply, m, nil)
}

// Call runs a global Lua function by name (failure/branch/onreply routes named by the script).
func (st *State) Call(fname string, m *engine.Msg) error {
	fn, ok := st.L.GetGlobal(fname).(*lua.LFunction)
	if !ok {
		return &engine.RouteError{Where: st.script.name, Err: fmt.Errorf("route function %q is not defined", fname)}
	}
	return st.run(fn, m, nil)
}

// CallArgs runs a global Lua function by name with string arguments (event callbacks such as
// dispatcher's, which Kamailio's KEMI calls with the event name).
func (st *State) CallArgs(fname string, m *engine.Msg, args ...string) error {
	fn, ok := st.L.GetGlobal(fname).(*lua.LFunction)
	if !ok {
		return &engine.RouteError{Where: st.script.name, Err: fmt.Errorf("route function %q is not defined", fname)}
	}
	return st.run(fn, m, args)
}

func (st *State) run(fn *lua.LFunction, m *engine.Msg, args []string) error {
	// Routes nest (t_relay runs the branch route inside the request route): restore the outer message.
	prev := st.msg
	st.msg = m
	L := st.L
	outer := st.depth == 0
	if outer {
		// The worker's budget for this message (route_timeout): the VM polls it before each instruction.
		// Setting it is two stores; the outer route's budget covers the nested ones.
		if ctx := m.Budget(); ctx != nil {
			L.SetContext(ctx)
		} else if L.Context() != nil {
			L.RemoveContext()
		}
	}
	st.depth++
	err := st.pcall(fn, prev, args)
	st.depth--
	st.msg = prev
	if err == nil {
		return nil
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		switch ae.Object {
		case st.exit:
			st.exits++
			return nil
		case st.drop:
			m.Dropped = true
			return nil
		}
	}
	if ctx := L.Context(); ctx != nil && ctx.Err() != nil {
		where := st.script.name
		if sm := whereRe.FindStringSubmatch(luaErrText(err)); sm != nil {
			where = sm[1]
		}
		if outer {
			st.recoverAfterCancel()
		}
		return &engine.RouteError{Where: where, Err: ctx.Err()}
	}
	return routeError(st.script.name, err)
}

// pcall calls fn; a Go panic that escapes the VM (a bug; the worker recovers it) still restores depth and
// the outer message prev, so the state keeps applying budgets on its worker's next message.
func (st *State) pcall(fn *lua.LFunction, prev *engine.Msg, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			st.depth--
			st.msg = prev
			panic(r)
		}
	}()
	st.L.Push(fn)
	for _, a := range args {
		st.L.Push(lua.LString(a))
	}
	return st.L.PCall(len(args), 0, st.errfn)
}

// recoverAfterCancel makes sure the state is usable after a cancelled route: PCall unwinds the Lua stacks,
// so this normally only checks; a state left with a frame or values on its stack is replaced by a fresh
// one of the same script (its Lua globals start over).
func (st *State) recoverAfterCancel() {
	L := st.L
	if _, busy := L.GetStack(0); !busy && L.GetTop() == 0 {
		return
	}
	old := *st
	if err := st.build(); err != nil {
		*st = old
		L.SetTop(0)
		st.script.log.Error("state not rebuilt after a cancelled route", "err", err)
		return
	}
	st.msg, st.depth = old.msg, old.depth
	L.Close()
	st.script.log.Warn("script state rebuilt after a cancelled route")
}

var whereRe = regexp.MustCompile(`^(.+?\.lua:\d+):\s*`)

// routeError splits "file.lua:12: message" into the engine's RouteError.
func routeError(script string, err error) error {
	text := luaErrText(err)
	if m := whereRe.FindStringSubmatch(text); m != nil {
		return &engine.RouteError{Where: m[1], Err: errors.New(text[len(m[0]):])}
	}
	return &engine.RouteError{Where: script, Err: errors.New(text)}
}

func luaErrText(err error) string {
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		return strings.TrimSpace(ae.Object.String())
	}
	return strings.TrimSpace(err.Error())
}

// buildKSR creates the KSR table: top-level module exports in KSR, the others in KSR.<module>, plus KSR.x.
func (st *State) buildKSR() error {
	L := st.L
	ksr := L.NewTable()
	for _, lm := range st.script.cfg.Mods.List {
		t := ksr
		if !lm.TopLevel {
			if existing, ok := ksr.RawGetString(lm.Name).(*lua.LTable); ok {
				t = existing
			} else {
				t = L.NewTable()
				ksr.RawSetString(lm.Name, t)
			}
		}
		mod := lm.Name
		if lm.TopLevel {
			mod = ""
		}
		for _, ex := range lm.Inst.Exports() {
			t.RawSetString(ex.Name, L.NewFunction(mustAdapt(st, mod, ex.Name, ex.Fn)))
		}
	}
	x := L.NewTable()
	x.RawSetString("exit", L.NewFunction(func(L *lua.LState) int { L.Error(st.exit, 0); return 0 }))
	x.RawSetString("drop", L.NewFunction(func(L *lua.LState) int {
		if st.msg != nil {
			st.msg.Dropped = true
		}
		L.Error(st.drop, 0)
		return 0
	}))
	st.moreX(x, ksr) // kemi.go: KSR.x.modf, KSR.x.probe
	ksr.RawSetString("x", x)
	ksr.RawSetString("app_lua", st.appLua()) // applua.go: KSR.app_lua.run, runstring, dostring, dofile ...
	L.SetGlobal("KSR", ksr)
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
