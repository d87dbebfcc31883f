package luabind

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// openSafeLibs opens base (without dofile/loadfile), string, table, math and a reduced os (time, date,
// clock); print goes to the log; require loads Lua files from the script's directory.
func openSafeLibs(L *lua.LState, s *Script) {
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath}, {lua.OsLibName, lua.OpenOs}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "module"} {
		L.SetGlobal(name, lua.LNil)
	}
	// string.rep is the one library call that allocates any size at once: string.rep("x", 2^40) would take
	// the process down before route_timeout could act.
	L.GetGlobal("string").(*lua.LTable).RawSetString("rep", L.NewFunction(strRep))
	full := L.GetGlobal("os").(*lua.LTable)
	os := L.NewTable()
	for _, name := range []string{"time", "date", "clock"} {
		os.RawSetString(name, full.RawGetString(name))
	}
	L.SetGlobal("os", os)
	L.SetGlobal("print", L.NewFunction(func(L *lua.LState) int {
		n := L.GetTop()
		parts := make([]string, n)
		for i := 1; i <= n; i++ {
			parts[i-1] = L.ToStringMeta(L.Get(i)).String()
		}
		s.log.Info(strings.Join(parts, "\t"), "where", where(L))
		return 0
	}))
	// require: the base library's loader walks registry._LOADERS; give it one loader that reads from the
	// script's directory through the configuration (a file or the embedded default), compiled once.
	reg := L.Get(lua.RegistryIndex).(*lua.LTable)
	L.SetField(reg, "_LOADED", L.NewTable())
	loaders := L.NewTable()
	loaders.Append(L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		proto, rel, err := s.requireProto(name)
		if err != nil {
			if _, ok := err.(*SyntaxError); ok {
				L.RaiseError("%s", err.Error())
			}
			L.Push(lua.LString(fmt.Sprintf("\n\tno file %s (%v)", rel, err)))
			return 1
		}
		L.Push(L.NewFunctionFromProto(proto))
		return 1
	}))
	L.SetField(reg, "_LOADERS", loaders)
}

// where is the script position of the Lua code calling a Go function.
func where(L *lua.LState) string {
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil {
			return fmt.Sprintf("%s:%d", dbg.Source, dbg.CurrentLine)
		}
	}
	return ""
}

// maxRep bounds the result of string.rep (bytes).
const maxRep = 16 << 20

// strRep is string.rep(s, n [, sep]) (Lua 5.1 has no sep; accepted as in 5.2) with a bounded result.
func strRep(L *lua.LState) int {
	str := L.CheckString(1)
	n := L.CheckInt(2)
	sep := L.OptString(3, "")
	if n <= 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if size := int64(len(str)+len(sep))*int64(n) - int64(len(sep)); size > maxRep {
		L.RaiseError("string.rep: result of %d bytes is over the limit of %d", size, maxRep)
		return 0
	}
	if sep == "" {
		L.Push(lua.LString(strings.Repeat(str, n)))
		return 1
	}
	L.Push(lua.LString(strings.Repeat(str+sep, n-1) + str))
	return 1
}
