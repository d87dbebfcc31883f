package luabind

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// KSR.app_lua: the functions Kamailio's app_lua module exports to KEMI. They belong to the Lua engine
// itself, so luabind defines them (as KSR.x) rather than a module, with app_lua's return codes:
//
//   - run(f), run_p1(f, p1), run_p2(f, p1, p2), run_p3(f, p1, p2, p3): call the script's global function f
//     with the string parameters. 1 when it returned or ended with KSR.x.exit/KSR.x.drop (the exit ends f
//     only, as in app_lua), -1 when f is not a function or raised an error (logged).
//   - runstring(code): run a Lua chunk in the script's state (its globals are the script's). 1 or -1.
//   - dostring(code), dofile(file): run a chunk in app_lua's other state: in Kamailio a separate Lua state,
//     here a separate global table that reads through to the script's globals (KSR, the libraries, the
//     script's functions) and keeps what the chunks define between calls, apart from the script. dofile
//     reads a file below the script's directory (relative to it, or absolute inside it; ".." is refused),
//     compiled once per script generation. 1 or -1.
//
// A route_timeout expiry inside any of them is not caught: it still ends the route.
func (st *State) appLua() *lua.LTable {
	L := st.L
	t := L.NewTable()
	run := func(nparams int) lua.LGFunction {
		return func(L *lua.LState) int {
			name := L.CheckString(1)
			fn, ok := L.GetGlobal(name).(*lua.LFunction)
			if !ok {
				st.script.log.Error("app_lua.run: no such function in the script", "function", name, "where", where(L))
				L.Push(lua.LNumber(-1))
				return 1
			}
			args := make([]lua.LValue, nparams)
			for i := range args {
				args[i] = lua.LString(L.CheckString(i + 2))
			}
			L.Push(lua.LNumber(st.protectedCall(L, "app_lua.run "+name, fn, args, true)))
			return 1
		}
	}
	t.RawSetString("run", L.NewFunction(run(0)))
	t.RawSetString("run_p1", L.NewFunction(run(1)))
	t.RawSetString("run_p2", L.NewFunction(run(2)))
	t.RawSetString("run_p3", L.NewFunction(run(3)))
	t.RawSetString("runstring", L.NewFunction(func(L *lua.LState) int {
		fn, err := L.LoadString(L.CheckString(1))
		if err != nil {
			st.script.log.Error("app_lua.runstring: "+err.Error(), "where", where(L))
			L.Push(lua.LNumber(-1))
			return 1
		}
		L.Push(lua.LNumber(st.protectedCall(L, "app_lua.runstring", fn, nil, false)))
		return 1
	}))
	t.RawSetString("dostring", L.NewFunction(func(L *lua.LState) int {
		fn, err := L.LoadString(L.CheckString(1))
		if err != nil {
			st.script.log.Error("app_lua.dostring: "+err.Error(), "where", where(L))
			L.Push(lua.LNumber(-1))
			return 1
		}
		fn.Env = st.otherEnv()
		L.Push(lua.LNumber(st.protectedCall(L, "app_lua.dostring", fn, nil, false)))
		return 1
	}))
	t.RawSetString("dofile", L.NewFunction(func(L *lua.LState) int {
		file := L.CheckString(1)
		proto, err := st.script.dofileProto(file)
		if err != nil {
			st.script.log.Error("app_lua.dofile: "+err.Error(), "file", file, "where", where(L))
			L.Push(lua.LNumber(-1))
			return 1
		}
		fn := L.NewFunctionFromProto(proto)
		fn.Env = st.otherEnv()
		L.Push(lua.LNumber(st.protectedCall(L, "app_lua.dofile "+file, fn, nil, false)))
		return 1
	}))
	return t
}

// protectedCall runs fn(args...) and gives app_lua's code: 1 when it returned, -1 when it raised an error
// (logged). exitOK: KSR.x.exit and KSR.x.drop end fn with 1 (app_lua's run); otherwise they are errors
// (app_lua's runstring/dostring see them as a failed chunk). A cancelled route budget is raised again.
func (st *State) protectedCall(L *lua.LState, what string, fn *lua.LFunction, args []lua.LValue, exitOK bool) int {
	top := L.GetTop()
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	err := L.PCall(len(args), 0, st.errfn)
	L.SetTop(top)
	if err == nil {
		return 1
	}
	if ctx := L.Context(); ctx != nil && ctx.Err() != nil {
		L.RaiseError("%s: %v", what, ctx.Err())
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) && (ae.Object == st.exit || ae.Object == st.drop) {
		if exitOK {
			return 1
		}
		return -1
	}
	st.script.log.Error(what+": "+luaErrText(err), "where", where(L))
	return -1
}

// otherEnv is the global table of dostring/dofile chunks, made on first use: reads fall through to the
// script's globals, writes stay in it.
func (st *State) otherEnv() *lua.LTable {
	if st.other != nil {
		return st.other
	}
	L := st.L
	env := L.NewTable()
	meta := L.NewTable()
	meta.RawSetString("__index", L.Get(lua.GlobalsIndex))
	L.SetMetatable(env, meta)
	st.other = env
	return env
}

// dofileProto compiles the file dofile names, once per script generation: name is relative to the
// script's directory or an absolute path inside it.
func (s *Script) dofileProto(name string) (*lua.FunctionProto, error) {
	dir := path.Dir(filepath.ToSlash(s.cfg.Lua.Script))
	var rel string
	if filepath.IsAbs(name) {
		abs, err := filepath.Abs(s.cfg.Resolve(filepath.FromSlash(dir)))
		if err != nil {
			return nil, err
		}
		inside, err := filepath.Rel(abs, filepath.Clean(name))
		if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s is not below the script's directory %s", name, abs)
		}
		rel = path.Join(dir, filepath.ToSlash(inside))
	} else {
		clean := path.Clean(filepath.ToSlash(name))
		if clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("%s is not below the script's directory", name)
		}
		rel = path.Join(dir, clean)
	}
	key := "dofile:" + rel
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.modules[key]; ok {
		return p, nil
	}
	src, err := s.cfg.ReadFile(rel)
	if err != nil {
		return nil, err
	}
	p, err := compile(src, s.cfg.Resolve(rel))
	if err != nil {
		return nil, err
	}
	s.modules[key] = p
	return p, nil
}

// AppLuaFunctions are the names in KSR.app_lua (for the static checks and the stubs).
var AppLuaFunctions = []string{"dofile", "dostring", "run", "run_p1", "run_p2", "run_p3", "runstring"}
