package engine

import "github.com/siplua/siplua/engine/config"

// The registry and the module descriptor live in engine/config (decoding [modules.NAME] needs them); these
// aliases keep engine.Register, engine.Module, engine.Export ... the names modules use.
type (
	Module    = config.Module
	Instance  = config.Instance
	Export    = config.Export
	Loaded    = config.Loaded
	ModuleSet = config.ModuleSet
	// Validator checks parameters after decoding.
	Validator = config.Validator
)

// Register adds a module to the registry; it panics on a duplicate name (a programming error).
func Register(m Module) { config.Register(m) }

// LookupModule returns a registered module.
func LookupModule(name string) (Module, bool) { return config.LookupModule(name) }

// RegisteredModules lists registered module names, sorted.
func RegisteredModules() []string { return config.RegisteredModules() }

// Optional lifecycle hooks, checked with type assertions.
type (
	// Starter runs once before traffic is served.
	Starter interface{ Start(*Env) error }
	// Stopper runs once at shutdown.
	Stopper interface{ Stop() error }
	// Reloader takes the parameters of a reloaded configuration (an instance of the same module). It is
	// called only when a parameter tagged `reload:"live"` changed; other changed parameters are reported as
	// needing a restart. It runs while workers route with the instance, so it must publish what it changes
	// safely (an atomic.Pointer swap); an error fails the reload (keep such checks in Validate when possible).
	Reloader interface{ Reload(next Instance) error }
	// FileReloader is a Reloader whose data lives in files its parameters name (a users file, a list): every
	// reload calls Reload, even when no parameter changed, so the files are read again.
	FileReloader interface {
		Reloader
		ReloadsFiles()
	}
)

// Gauge is a module's current value (registered AORs, contacts, dialogs) shown in /metrics as
// siplua_NAME and in `siplua ctl stats.get` as NAME. Value is called when scraped, never per message: it
// must be cheap and safe to call from any goroutine.
type Gauge struct {
	Name  string // "usrloc_contacts": lower case, module name first
	Help  string
	Value func() float64
}

// GaugeProvider is a module that shows gauges; the engine reads the list once, at start.
type GaugeProvider interface {
	Gauges() []Gauge
}

// ModuleGauges lists the gauges of the loaded modules.
func (e *Engine) ModuleGauges() []Gauge {
	var out []Gauge
	for _, l := range e.cfg.Mods.List {
		if g, ok := l.Inst.(GaugeProvider); ok {
			out = append(out, g.Gauges()...)
		}
	}
	return out
}
