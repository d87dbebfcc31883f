// Package corex has Kamailio's corex helpers.
package corex

import "github.com/siplua/siplua/engine"

func init() {
	engine.Register(engine.Module{Name: "corex", New: func() engine.Instance { return &Corex{} }})
}

// Corex has no parameters.
type Corex struct{}

// Exports: KSR.corex.*.
func (*Corex) Exports() []engine.Export {
	return []engine.Export{
		{Name: "has_ruri_user", Fn: hasRURIUser},
	}
}

// hasRURIUser: 1 when the Request-URI has a user part, -1 otherwise (Kamailio returns an int here).
func hasRURIUser(m *engine.Msg) int {
	u, ok := m.ParsedRURI()
	if !ok || u.User == "" {
		return -1
	}
	return 1
}
