package luabind

import (
	"sort"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
)

// The [kemi] callbacks (engine.KemiCallbacks): the script functions named by the configuration, looked up
// once when the state is built. A name the script does not define is no callback, as in Kamailio.

func (st *State) loadKemi() {
	k := st.script.cfg.Kemi.Effective()
	get := func(name string) *lua.LFunction {
		if name == "" {
			return nil
		}
		fn, _ := st.L.GetGlobal(name).(*lua.LFunction)
		return fn
	}
	st.reply = get(k.ReplyRouteCallback)
	st.kemi[engine.KemiReceived] = get(k.ReceivedRouteCallback)
	st.kemi[engine.KemiPreRouting] = get(k.PreRoutingCallback)
	st.kemi[engine.KemiOnSend] = get(k.OnsendRouteCallback)
}

// HasKemi tells whether the script defines callback k.
func (st *State) HasKemi(k engine.KemiKind) bool { return int(k) < len(st.kemi) && st.kemi[k] != nil }

// kemiArgs are the arguments Kamailio passes: the event name to the pre-routing callback, nothing to the
// others.
var kemiArgs = [...][]string{engine.KemiReceived: nil, engine.KemiPreRouting: {"core:pre-routing"}, engine.KemiOnSend: nil}

// RunKemi runs callback k with m as the current message (nested in the running route for onsend).
func (st *State) RunKemi(k engine.KemiKind, m *engine.Msg) error {
	if !st.HasKemi(k) {
		return nil
	}
	return st.run(st.kemi[k], m, kemiArgs[k])
}

// moreX adds app_lua's KSR.x.modf and KSR.x.probe to the KSR.x table.
//
// KSR.x.modf(name, ...) runs a module function by name, Kamailio's way to call a function that has no KEMI
// export: siplua's modules have no other functions than their KEMI exports, so it runs the export of that
// name (the modules' first, then the core's, e.g. modf("sl_send_reply", "404", "Not Found")), with the
// arguments converted as for a direct call (numeric strings for numbers). It returns the function's integer
// result (true 1, false -1, as the native function's return code); -1 when no module has the name.
// KSR.x.probe() does nothing (app_lua logs a debug line).
func (st *State) moreX(x, ksr *lua.LTable) {
	L := st.L
	x.RawSetString("probe", L.NewFunction(func(L *lua.LState) int { return 0 }))
	x.RawSetString("modf", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		fn := findExport(ksr, name)
		if fn == nil {
			L.Push(lua.LNumber(-1))
			return 1
		}
		n := L.GetTop() - 1
		L.Push(fn)
		for i := 2; i <= n+1; i++ {
			L.Push(L.Get(i))
		}
		L.Call(n, 1)
		switch v := L.Get(-1).(type) {
		case lua.LBool:
			L.Pop(1)
			if v {
				L.Push(lua.LNumber(1))
			} else {
				L.Push(lua.LNumber(-1))
			}
		case *lua.LNilType:
			L.Pop(1)
			L.Push(lua.LNumber(1)) // a function without a result (KSR.info) went through
		}
		return 1
	}))
}

// findExport looks a function up by name in the module tables of KSR (sorted by module name, so the
// choice is stable), then at its top level. KSR.x is not searched.
func findExport(ksr *lua.LTable, name string) *lua.LFunction {
	var mods []string
	ksr.ForEach(func(k, v lua.LValue) {
		if t, ok := v.(*lua.LTable); ok && k.String() != "x" {
			if _, ok := t.RawGetString(name).(*lua.LFunction); ok {
				mods = append(mods, k.String())
			}
		}
	})
	if len(mods) > 0 {
		sort.Strings(mods)
		return ksr.RawGetString(mods[0]).(*lua.LTable).RawGetString(name).(*lua.LFunction)
	}
	fn, _ := ksr.RawGetString(name).(*lua.LFunction)
	return fn
}
