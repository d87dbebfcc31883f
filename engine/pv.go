package engine

import "strings"

// PV is a class of pseudo-variables ($ru, $hdr(Name), $T_reply_code): a module that owns the data provides
// its getter (and setter when writable). The pv module parses "$name(arg)" specs and looks classes up here,
// so tm, registrar and others add their variables without the pv module knowing them.
type PV struct {
	Name string                                  // without '$' or argument: "ru", "hdr", "T_reply_code"
	Get  func(m *Msg, arg string) Value          // Null when unset
	Set  func(m *Msg, arg string, v Value) error // nil when read-only; Null Value = unset ($var(x) = $null)
}

// PVProvider is implemented by modules that provide pseudo-variables.
type PVProvider interface{ PVs() []PV }

// ReplyHook is implemented by modules that see every received reply before the engine relays it statelessly
// (Kamailio's response_f, e.g. tm matching replies to its transactions). handled=true means the module has
// taken the reply and the engine does nothing more with it.
type ReplyHook interface{ OnReply(m *Msg) (handled bool) }

func (e *Engine) indexModules() {
	e.pvs = map[string]PV{}
	for _, l := range e.cfg.Mods.List {
		if p, ok := l.Inst.(PVProvider); ok {
			for _, pv := range p.PVs() {
				e.pvs[pv.Name] = pv
			}
		}
		if h, ok := l.Inst.(ReplyHook); ok {
			e.replyHooks = append(e.replyHooks, h)
		}
		if t, ok := l.Inst.(WireTap); ok {
			e.taps = append(e.taps, t)
		}
		if h, ok := l.Inst.(TxFinalHook); ok {
			e.txFinal = append(e.txFinal, h)
		}
		if r, ok := l.Inst.(TxReplier); ok && e.txReplier == nil {
			e.txReplier = r
		}
	}
}

// ParsePVSpec splits a module parameter naming a pseudo-variable, "$name" or "$name(arg)", for LookupPV
// (Kamailio's pv_spec parameters: dispatcher's setid_pvname, nathelper's and dialog's result PVs).
func ParsePVSpec(s string) (name, arg string, ok bool) {
	if len(s) < 2 || s[0] != '$' {
		return "", "", false
	}
	s = s[1:]
	i := strings.IndexByte(s, '(')
	if i < 0 {
		return s, "", true
	}
	if i == 0 || s[len(s)-1] != ')' {
		return "", "", false
	}
	return s[:i], s[i+1 : len(s)-1], true
}

// LookupPV returns the pseudo-variable class name of a loaded module.
func (e *Engine) LookupPV(name string) (PV, bool) {
	pv, ok := e.pvs[name]
	return pv, ok
}

// Module returns a loaded module instance by name (for modules that cooperate, e.g. tm and sl).
func (e *Engine) Module(name string) (Instance, bool) { return e.cfg.Mods.Get(name) }
