package config

import (
	"fmt"
	"sort"
	"sync"
)

// The module registry lives here, below the engine, because decoding a configuration means creating the
// instance of every [modules.NAME] table and decoding the table into it. It needs nothing else of the
// engine: an Export's Fn is typed by luabind, not here. Package engine re-exports these names
// (engine.Register, engine.Module, engine.Export, ...), which is what modules use.

// Module describes a module that can be loaded with a [modules.NAME] table. Modules register themselves in
// init(), like Caddy modules and Kamailio's loadmodule table.
type Module struct {
	Name string
	// New returns an instance with its parameter defaults set; the engine decodes [modules.NAME] into it.
	New func() Instance
	// Builtin modules are always loaded (Kamailio core functions, pv, kx); a [modules.NAME] table is optional.
	Builtin bool
	// TopLevel exports land directly in KSR (KSR.is_method) instead of KSR.NAME.
	TopLevel bool
	// Requires names modules that must be loaded too (registrar needs usrloc, as in Kamailio): a
	// configuration without them is an error, and they start before this one.
	Requires []string
	// After names modules that, when loaded, start before this one (nathelper pings what usrloc holds).
	After []string
}

// Instance is one loaded module. Its exported struct fields with toml tags are its parameters.
type Instance interface {
	Exports() []Export
}

// Validator checks parameters after decoding.
type Validator interface{ Validate() error }

// Export is one KSR function. Fn is one of the signatures luabind adapts (see luabind/adapt.go): it takes
// the message context first, then strings and ints, and returns an int (Kamailio's >0 true, <0 false), a
// bool (core checks), a string, a (string, bool) pair (string or nil), a Value, or nothing.
type Export struct {
	Name string
	Fn   any
}

var (
	regMu    sync.RWMutex
	registry = map[string]Module{}
)

// Register adds a module to the registry; it panics on a duplicate name (a programming error).
func Register(m Module) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[m.Name]; dup {
		panic(fmt.Sprintf("engine: module %q registered twice", m.Name))
	}
	registry[m.Name] = m
}

// LookupModule returns a registered module.
func LookupModule(name string) (Module, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	m, ok := registry[name]
	return m, ok
}

// RegisteredModules lists registered module names, sorted.
func RegisteredModules() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Loaded is one module instance of a configuration.
type Loaded struct {
	Module
	Inst Instance
}

// ModuleSet is the set of modules a configuration loads, in a stable order.
type ModuleSet struct {
	List   []Loaded
	byName map[string]int
}

// Get returns the loaded instance of a module.
func (s *ModuleSet) Get(name string) (Instance, bool) {
	i, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return s.List[i].Inst, true
}

// Add appends a module instance (reload builds the effective set with it).
func (s *ModuleSet) Add(m Module, inst Instance) {
	if s.byName == nil {
		s.byName = map[string]int{}
	}
	s.byName[m.Name] = len(s.List)
	s.List = append(s.List, Loaded{Module: m, Inst: inst})
}

// orderByDependencies puts every module after the modules it requires or names in After (when loaded), so
// that Start runs in dependency order and Stop in reverse; otherwise the order stays by name. A cycle
// (a programming error) keeps the name order for the modules in it.
func (s *ModuleSet) orderByDependencies() {
	placed := make(map[string]bool, len(s.List))
	visiting := map[string]bool{}
	out := make([]Loaded, 0, len(s.List))
	var visit func(l Loaded)
	visit = func(l Loaded) {
		if placed[l.Name] || visiting[l.Name] {
			return
		}
		visiting[l.Name] = true
		for _, dep := range append(append([]string{}, l.Requires...), l.After...) {
			if i, ok := s.byName[dep]; ok {
				visit(s.List[i])
			}
		}
		visiting[l.Name] = false
		placed[l.Name] = true
		out = append(out, l)
	}
	for _, l := range s.List {
		visit(l)
	}
	s.List = out
	for i, l := range s.List {
		s.byName[l.Name] = i
	}
}
