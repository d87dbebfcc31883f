package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/siplua/siplua/engine/config"
)

// Reload switches the engine to a new configuration and script without dropping a message: it compiles the
// script against the running modules, builds one state per worker (running the top-level chunk), and only
// when all of that worked swaps the generation. Messages already in a route finish on the old generation,
// new ones start on the new one, and each worker closes its old state when it moves on (idle workers are
// woken for it). On failure nothing changes and the error lists every problem as file:line: message.
//
// Only the script, log_level and module parameters that a module applies live (a `reload:"live"` field tag
// and a Reloader) take effect; other changes need a restart and come back as warnings naming the key.
// Lua globals are not carried over: every state starts from the script's top-level chunk.
func (e *Engine) Reload(cfg *Config) (warnings []string, err error) {
	return e.ReloadFrom(func() (*Config, error) { return cfg, nil })
}

// ReloadFrom is Reload with the configuration loaded under the reload lock, so that concurrent triggers
// (ctl, SIGHUP, file watch) each see the files as they are when their turn comes; a load error counts as a
// failed reload.
func (e *Engine) ReloadFrom(load func() (*Config, error)) (warnings []string, err error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	began := time.Now()
	defer func() {
		ev := ReloadEvent{Time: began, OK: err == nil, Generation: e.Generation(), Duration: time.Since(began), Warnings: warnings}
		if err != nil {
			ev.Errors = ErrorLines(err)
		}
		e.events.addReload(ev)
		if err != nil {
			e.stats.reloadsFailed.Add(1)
			e.log.Error("reload failed: the running script keeps serving", "generation", e.Generation(), "err", err)
			return
		}
		e.stats.reloadsOK.Add(1)
		e.log.Info("reloaded", "generation", e.Generation(), "warnings", len(warnings))
		for _, w := range warnings {
			e.log.Warn("reload: " + w)
		}
	}()
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	warnings = e.restartWarnings(cfg)
	tlsState, err := prepareTLS(cfg) // a certificate that does not load fails the reload: nothing changes
	if err != nil {
		return nil, err
	}
	eff, added := e.effectiveConfig(cfg)
	g, err := e.newGeneration(eff)
	if err != nil {
		return nil, withAddedHint(err, cfg, added)
	}
	if err := e.reloadModules(cfg); err != nil {
		g.Release()
		return nil, err
	}
	if lv := e.level.Load(); lv != nil && cfg.Core.LogLevel != e.current.Load().Core.LogLevel {
		l, _ := ParseLogLevel(cfg.Core.LogLevel) // validated when parsed
		lv.Set(l)
	}
	e.routeLimit.Store(int64(cfg.Lua.RouteBudget())) // route_timeout applies live
	if tlsState != nil {
		e.tr.SetTLS(tlsState) // renewed certificates serve the next handshakes
	}
	g.id = e.genSeq.Add(1)
	old := e.gen.Swap(g)
	e.current.Store(eff)
	// Its reference as the current generation: it closes once no worker routes with it and no transaction
	// holds it.
	old.Release()
	for _, w := range e.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return warnings, nil
}

// SetLevelVar gives the engine the process log level, so that reloads and ctl can change it live.
func (e *Engine) SetLevelVar(lv *slog.LevelVar) { e.level.Store(lv) }

// LevelVar is the process log level set with SetLevelVar (nil if none).
func (e *Engine) LevelVar() *slog.LevelVar { return e.level.Load() }

// Current is the configuration of the last successful reload (the startup one before any). Its Mods are the
// running module instances; keys that need a restart still act with their Config() values.
func (e *Engine) Current() *Config { return e.current.Load() }

// ScriptFiles lists the files the current script is made of (the script and the files it required), when
// the script can tell; file watching uses it.
func (e *Engine) ScriptFiles() []string {
	if f, ok := e.gen.Load().script.(interface{ Files() []string }); ok {
		return f.Files()
	}
	return nil
}

// WorkerInfo is one worker as core.workers shows it.
type WorkerInfo struct {
	ID         int    `json:"id"`
	Busy       bool   `json:"busy"`
	Generation uint64 `json:"generation"`
}

// Workers describes the workers: busy or idle, and the script generation each one routes with (0 before it
// took its first state).
func (e *Engine) Workers() []WorkerInfo {
	out := make([]WorkerInfo, len(e.workers))
	for i, w := range e.workers {
		out[i] = WorkerInfo{ID: i, Busy: w.busy.Load(), Generation: w.genID.Load()}
	}
	return out
}

// QueueLen returns the messages waiting for a worker and the queue's capacity.
func (e *Engine) QueueLen() (n, capacity int) { return len(e.queue), cap(e.queue) }

// effectiveConfig is cfg with the running modules in place of its fresh instances, keeping only those
// that cfg loads too: the new script runs against modules that were started, and is checked against what
// the configuration asks for, so a script that needs a module only cfg adds is rejected. added lists such
// modules.
func (e *Engine) effectiveConfig(cfg *Config) (*Config, []string) {
	eff := *cfg
	eff.Mods = &ModuleSet{}
	for _, l := range e.cfg.Mods.List {
		if _, ok := cfg.Mods.Get(l.Name); ok {
			eff.Mods.Add(l.Module, l.Inst)
		}
	}
	var added []string
	for _, l := range cfg.Mods.List {
		if _, ok := e.cfg.Mods.Get(l.Name); !ok {
			added = append(added, l.Name)
		}
	}
	return &eff, added
}

// withAddedHint appends, to a failed reload that mentions a module the new configuration adds, why that
// module is missing.
func withAddedHint(err error, cfg *Config, added []string) error {
	var hints Errors
	for _, name := range added {
		if strings.Contains(err.Error(), fmt.Sprintf("%q", name)) || strings.Contains(err.Error(), "KSR."+name+".") {
			hints = append(hints, &ConfigError{File: cfg.File, Line: config.TableLine(cfg.Src, "modules."+name),
				Msg: fmt.Sprintf("[modules.%s] was added after start: a module is loaded only at start, restart siplua to use it", name)})
		}
	}
	if len(hints) == 0 {
		return err
	}
	var es Errors
	if !errors.As(err, &es) {
		es = Errors{err}
	}
	return append(append(Errors{}, es...), hints...)
}

// restartWarnings names what cfg changes that a reload cannot apply.
func (e *Engine) restartWarnings(cfg *Config) []string {
	var ws []string
	for _, k := range changedKeys(e.cfg.Core, cfg.Core) {
		if k != "log_level" {
			ws = append(ws, fmt.Sprintf("core.%s changed: it takes effect on restart", k))
		}
	}
	for _, k := range changedKeys(e.cfg.Ctl, cfg.Ctl) {
		ws = append(ws, fmt.Sprintf("ctl.%s changed: it takes effect on restart", k))
	}
	for _, k := range changedKeys(e.cfg.Metrics, cfg.Metrics) {
		ws = append(ws, fmt.Sprintf("metrics.%s changed: it takes effect on restart", k))
	}
	for _, k := range changedKeys(e.cfg.Web, cfg.Web) {
		ws = append(ws, fmt.Sprintf("web.%s changed: it takes effect on restart", k))
	}
	// [tls] certificates and verification apply to the next handshake (Reload loads them); the WebSocket
	// settings and the handshake timeout are the transport's, fixed at start.
	for _, k := range changedKeys(e.cfg.WebSocket, cfg.WebSocket) {
		ws = append(ws, fmt.Sprintf("websocket.%s changed: it takes effect on restart", k))
	}
	if e.cfg.TLS.HandshakeTimeout != cfg.TLS.HandshakeTimeout {
		ws = append(ws, "tls.handshake_timeout changed: it takes effect on restart")
	}
	for _, l := range e.cfg.Mods.List {
		next, ok := cfg.Mods.Get(l.Name)
		if !ok {
			ws = append(ws, fmt.Sprintf("[modules.%s] was removed: the module stays loaded until restart, the script may no longer use it", l.Name))
			continue
		}
		live := liveParams(l.Inst)
		_, canReload := l.Inst.(Reloader)
		for _, k := range changedKeys(l.Inst, next) {
			if !canReload || !live[k] {
				ws = append(ws, fmt.Sprintf("modules.%s.%s changed: it takes effect on restart", l.Name, k))
			}
		}
	}
	for _, l := range cfg.Mods.List {
		if _, ok := e.cfg.Mods.Get(l.Name); !ok {
			ws = append(ws, fmt.Sprintf("[modules.%s] was added: a module is loaded only at start, restart siplua to use it", l.Name))
		}
	}
	return ws
}

// reloadModules hands the new parameters to the running modules that apply some live and whose live
// parameters changed, and to every FileReloader.
func (e *Engine) reloadModules(cfg *Config) error {
	for _, l := range e.cfg.Mods.List {
		r, ok := l.Inst.(Reloader)
		next, present := cfg.Mods.Get(l.Name)
		if !ok || !present {
			continue
		}
		live := liveParams(l.Inst)
		_, changed := l.Inst.(FileReloader)
		for _, k := range changedKeys(l.Inst, next) {
			changed = changed || live[k]
		}
		if !changed {
			continue
		}
		if err := r.Reload(next); err != nil {
			return &ConfigError{File: cfg.File, Line: config.TableLine(cfg.Src, "modules."+l.Name), Msg: fmt.Sprintf("[modules.%s]: reload: %v", l.Name, err)}
		}
	}
	return nil
}

// liveParams are the TOML keys of a parameter struct tagged `reload:"live"`.
func liveParams(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	live := map[string]bool{}
	if t == nil || t.Kind() != reflect.Struct {
		return live
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("reload") == "live" {
			live[tomlName(f)] = true
		}
	}
	return live
}

func tomlName(f reflect.StructField) string {
	return strings.Split(f.Tag.Get("toml"), ",")[0]
}

// changedKeys lists the TOML keys whose values differ between two parameter structs of the same type.
func changedKeys(a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for va.Kind() == reflect.Pointer {
		if va.IsNil() || vb.IsNil() {
			return nil
		}
		va, vb = va.Elem(), vb.Elem()
	}
	if va.Kind() != reflect.Struct || va.Type() != vb.Type() {
		return nil
	}
	var keys []string
	for i := 0; i < va.NumField(); i++ {
		f := va.Type().Field(i)
		name := tomlName(f)
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}
