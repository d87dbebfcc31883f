package luabind

import (
	"fmt"
	"strconv"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
)

// Each KSR export is a plain typed Go function; adapt wraps it in a Lua function once per state, choosing by
// its signature here so the call path has no reflection. Arguments follow app_lua: a string parameter takes a
// Lua string or number, an int parameter a number or a numeric string.
type (
	fnI    = func(*engine.Msg) int
	fnSI   = func(*engine.Msg, string) int
	fnII   = func(*engine.Msg, int) int
	fnSSI  = func(*engine.Msg, string, string) int
	fnISI  = func(*engine.Msg, int, string) int
	fnSII  = func(*engine.Msg, string, int) int
	fnIII  = func(*engine.Msg, int, int) int
	fnSSSI = func(*engine.Msg, string, string, string) int
	fnSSII = func(*engine.Msg, string, string, int) int
	fnSISI = func(*engine.Msg, string, int, string) int
	fnB    = func(*engine.Msg) bool
	fnSB   = func(*engine.Msg, string) bool
	fnIB   = func(*engine.Msg, int) bool
	fnSSB  = func(*engine.Msg, string, string) bool
	fnSIB  = func(*engine.Msg, string, int) bool
	fnS    = func(*engine.Msg) string
	fnSS   = func(*engine.Msg, string) string
	fnSIS  = func(*engine.Msg, string, int) string
	fnXS   = func(*engine.Msg) (string, bool)
	fnSXS  = func(*engine.Msg, string) (string, bool)
	fnSIXS = func(*engine.Msg, string, int) (string, bool)
	fnSV   = func(*engine.Msg, string) engine.Value
	fnSIV  = func(*engine.Msg, string, int) engine.Value
	fnSSV  = func(*engine.Msg, string, string) engine.Value
	fnN    = func(*engine.Msg)
	fnSN   = func(*engine.Msg, string)
	fnSSN  = func(*engine.Msg, string, string)
	fnSIN  = func(*engine.Msg, string, int)
	fnISN  = func(*engine.Msg, int, string)
	fnV    = func(*engine.Msg) engine.Value
)

// fnSSIII is pv_auth_check(realm, passwd, flags, checks) (declared apart so the table above keeps its
// alignment).
type fnSSIII = func(*engine.Msg, string, string, int, int) int

// fnSSSII is htable's sht_setxs(table, key, value, expire) (declared apart so the table above keeps its
// alignment).
type fnSSSII = func(*engine.Msg, string, string, string, int) int

// pvx's xavp_copy_dst(src, idx, dst, dst_idx) and xavp_slist_explode(list, sep, mode, name); its
// xavp_getd(name) and xavp_getd_p1/xavp_get_keys(name, idx) return tables (see pushAny).
type (
	fnSISII = func(*engine.Msg, string, int, string, int) int
	fnSSSSI = func(*engine.Msg, string, string, string, string) int
	fnSA    = func(*engine.Msg, string) any
	fnSIA   = func(*engine.Msg, string, int) any
)

// fnSSIISI is textops' regex_substring(input, regex, index, count, dst).
type fnSSIISI = func(*engine.Msg, string, string, int, int, string) int

// dispatcher's ds_select_*_limit(set, alg, limit), ds_is_from_list_uri(set, mode, uri) and permissions'
// allow_address(group, ip, port).
type (
	fnIIII = func(*engine.Msg, int, int, int) int
	fnIISI = func(*engine.Msg, int, int, string) int
	fnISII = func(*engine.Msg, int, string, int) int
)

// Kamailio 5.6 signatures of the KEMI breadth work: setbiflag(flag, branch) bool, hdr.match_content(4 str)
// bool, tmx.t_reply_callid(callid, cseq, code, reason), tm.t_uac_send(6 str).
type (
	fnIIB     = func(*engine.Msg, int, int) bool
	fnSSSSB   = func(*engine.Msg, string, string, string, string) bool
	fnSSISI   = func(*engine.Msg, string, string, int, string) int
	fnSSSSSSI = func(*engine.Msg, string, string, string, string, string, string) int
)

// fnISSSI is xhttp's xhttp_reply(code, reason, ctype, body).
type fnISSSI = func(*engine.Msg, int, string, string, string) int

// Supported reports whether luabind can adapt a function of this type (modules are checked in tests).
func Supported(fn any) bool {
	return adapt(nil, "", fn) != nil
}

// adapt returns the Lua function for one export, reading the current message from st.
func adapt(st *State, name string, fn any) lua.LGFunction {
	// A KSR call outside a route (the script's top-level code) has no message: a clear Lua error, not a
	// nil pointer in the module.
	msg := func(L *lua.LState) *engine.Msg {
		if st.msg == nil {
			L.RaiseError("KSR.%s needs a SIP message: call it from a route function, not the top-level code", name)
		}
		return st.msg
	}
	switch f := fn.(type) {
	case fnI:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L))) }
	case fnSI:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argS(L, name, 1))) }
	case fnII:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argI(L, name, 1))) }
	case fnSSI:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2))) }
	case fnISI:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argI(L, name, 1), argS(L, name, 2))) }
	case fnSII:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argS(L, name, 1), argI(L, name, 2))) }
	case fnIII:
		return func(L *lua.LState) int { return pushInt(L, f(msg(L), argI(L, name, 1), argI(L, name, 2))) }
	case fnSSSI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argS(L, name, 3)))
		}
	case fnSSII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argI(L, name, 3)))
		}
	case fnSSIII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argI(L, name, 3), argI(L, name, 4)))
		}
	case fnSISII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argI(L, name, 2), argS(L, name, 3), argI(L, name, 4)))
		}
	case fnSSSSI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argS(L, name, 3), argS(L, name, 4)))
		}
	case fnSA:
		return func(L *lua.LState) int { L.Push(pushAny(L, f(msg(L), argS(L, name, 1)))); return 1 }
	case fnSIA:
		return func(L *lua.LState) int { L.Push(pushAny(L, f(msg(L), argS(L, name, 1), argI(L, name, 2)))); return 1 }
	case fnSSSII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argS(L, name, 3), argI(L, name, 4)))
		}
	case fnSSIISI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argI(L, name, 3), argI(L, name, 4), argS(L, name, 5)))
		}
	case fnIIII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argI(L, name, 1), argI(L, name, 2), argI(L, name, 3)))
		}
	case fnIISI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argI(L, name, 1), argI(L, name, 2), argS(L, name, 3)))
		}
	case fnISII:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argI(L, name, 1), argS(L, name, 2), argI(L, name, 3)))
		}
	case fnSISI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argI(L, name, 2), argS(L, name, 3)))
		}
	case fnIIB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L), argI(L, name, 1), argI(L, name, 2)))); return 1 }
	case fnSSSSB:
		return func(L *lua.LState) int {
			L.Push(lua.LBool(f(msg(L), argS(L, name, 1), argS(L, name, 2), argS(L, name, 3), argS(L, name, 4))))
			return 1
		}
	case fnISSSI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argI(L, name, 1), argS(L, name, 2), argS(L, name, 3), argS(L, name, 4)))
		}
	case fnSSISI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argI(L, name, 3), argS(L, name, 4)))
		}
	case fnSSSSSSI:
		return func(L *lua.LState) int {
			return pushInt(L, f(msg(L), argS(L, name, 1), argS(L, name, 2), argS(L, name, 3), argS(L, name, 4),
				argS(L, name, 5), argS(L, name, 6)))
		}
	case fnB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L)))); return 1 }
	case fnSB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L), argS(L, name, 1)))); return 1 }
	case fnIB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L), argI(L, name, 1)))); return 1 }
	case fnSSB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L), argS(L, name, 1), argS(L, name, 2)))); return 1 }
	case fnSIB:
		return func(L *lua.LState) int { L.Push(lua.LBool(f(msg(L), argS(L, name, 1), argI(L, name, 2)))); return 1 }
	case fnS:
		return func(L *lua.LState) int { L.Push(lua.LString(f(msg(L)))); return 1 }
	case fnSS:
		return func(L *lua.LState) int { L.Push(lua.LString(f(msg(L), argS(L, name, 1)))); return 1 }
	case fnSIS:
		return func(L *lua.LState) int { L.Push(lua.LString(f(msg(L), argS(L, name, 1), argI(L, name, 2)))); return 1 }
	case fnXS:
		return func(L *lua.LState) int { return pushXS(L)(f(msg(L))) }
	case fnSXS:
		return func(L *lua.LState) int { return pushXS(L)(f(msg(L), argS(L, name, 1))) }
	case fnSIXS:
		return func(L *lua.LState) int { return pushXS(L)(f(msg(L), argS(L, name, 1), argI(L, name, 2))) }
	case fnV:
		return func(L *lua.LState) int { return pushValue(L, f(msg(L))) }
	case fnSV:
		return func(L *lua.LState) int { return pushValue(L, f(msg(L), argS(L, name, 1))) }
	case fnSIV:
		return func(L *lua.LState) int { return pushValue(L, f(msg(L), argS(L, name, 1), argI(L, name, 2))) }
	case fnSSV:
		return func(L *lua.LState) int { return pushValue(L, f(msg(L), argS(L, name, 1), argS(L, name, 2))) }
	case fnN:
		return func(L *lua.LState) int { f(msg(L)); return 0 }
	case fnSN:
		return func(L *lua.LState) int { f(msg(L), argS(L, name, 1)); return 0 }
	case fnSSN:
		return func(L *lua.LState) int { f(msg(L), argS(L, name, 1), argS(L, name, 2)); return 0 }
	case fnSIN:
		return func(L *lua.LState) int { f(msg(L), argS(L, name, 1), argI(L, name, 2)); return 0 }
	case fnISN:
		return func(L *lua.LState) int { f(msg(L), argI(L, name, 1), argS(L, name, 2)); return 0 }
	}
	return nil
}

func pushInt(L *lua.LState, v int) int { L.Push(lnum(v)); return 1 }

// smallInts are the boxed LNumbers of the values KSR functions return most (return codes, status codes
// up to 255, small counts): an LNumber stored in an LValue interface is otherwise a heap allocation on
// every call. Read-only after init.
var smallInts = func() (a [266]lua.LValue) {
	for i := range a {
		a[i] = lua.LNumber(i - 10)
	}
	return a
}()

// lnum is v as a Lua number, pre-boxed when small.
func lnum(v int) lua.LValue {
	if v >= -10 && v < 256 {
		return smallInts[v+10]
	}
	return lua.LNumber(v)
}

func pushXS(L *lua.LState) func(string, bool) int {
	return func(s string, ok bool) int {
		if ok {
			L.Push(lua.LString(s))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}
}

func pushValue(L *lua.LState, v engine.Value) int {
	switch v.Kind {
	case engine.Str:
		L.Push(lua.LString(v.S))
	case engine.Int:
		L.Push(lnum(int(v.I)))
	default:
		L.Push(lua.LNil)
	}
	return 1
}

func argS(L *lua.LState, fname string, n int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return v.String()
	}
	L.RaiseError("KSR.%s: argument %d must be a string, got %s", fname, n, L.Get(n).Type())
	return ""
}

func argI(L *lua.LState, fname string, n int) int {
	switch v := L.Get(n).(type) {
	case lua.LNumber:
		return int(v)
	case lua.LString:
		if i, err := strconv.Atoi(string(v)); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return int(f)
		}
	}
	L.RaiseError("KSR.%s: argument %d must be a number, got %s", fname, n, L.Get(n).Type())
	return 0
}

// mustAdapt panics for an export whose type luabind does not know: a module bug, caught by tests.
func mustAdapt(st *State, mod, name string, fn any) lua.LGFunction {
	full := name
	if mod != "" {
		full = mod + "." + name
	}
	f := adapt(st, full, fn)
	if f == nil {
		panic(fmt.Sprintf("luabind: KSR.%s has unsupported type %T", full, fn))
	}
	return f
}

// pushAny converts a table result: []any is an array (1-based), map[string]any a table by key,
// engine.Value a string, number or nil, nil is nil.
func pushAny(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(pushAny(L, e))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, pushAny(L, e))
		}
		return t
	case engine.Value:
		switch x.Kind {
		case engine.Str:
			return lua.LString(x.S)
		case engine.Int:
			return lua.LNumber(x.I)
		}
	}
	return lua.LNil
}
