package luabind

import (
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
