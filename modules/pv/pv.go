// Package pv is Kamailio's pv module: KSR.pv.get/sets/... over pseudo-variable specs like "$ru" or
// "$hdr(Name)". Variable classes come from any loaded module (engine.PVProvider); this module provides the
// core message variables and $var, $avp and $shv.
package pv

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "pv", Builtin: true, New: func() engine.Instance { return New() }})
}

// PV is the module instance. It owns the $shv table, shared by all workers.
type PV struct {
	log *slog.Logger

	shvMu sync.RWMutex
	shv   map[string]engine.Value

	cache specCache // compiled specs and format strings, shared by all workers
}

// New returns an instance with an empty $shv table.
func New() *PV { return &PV{shv: map[string]engine.Value{}} }

// Start keeps the module logger.
func (p *PV) Start(env *engine.Env) error { p.log = env.Log; return nil }

// Reload keeps the $shv values across a configuration reload, as they are process state in Kamailio.
func (p *PV) Reload(engine.Instance) error { return nil }

func (p *PV) logger() *slog.Logger {
	if p.log == nil {
		return slog.Default()
	}
	return p.log
}

// Exports: KSR.pv.*, with app_lua's return types (getters return the value's own type: string or number).
func (p *PV) Exports() []engine.Export {
	return []engine.Export{
		{Name: "get", Fn: p.get},
		{Name: "gete", Fn: func(m *engine.Msg, spec string) engine.Value { return orStr(p.get(m, spec), "") }},
		{Name: "getw", Fn: func(m *engine.Msg, spec string) engine.Value { return orStr(p.get(m, spec), "<null>") }},
		{Name: "getvn", Fn: func(m *engine.Msg, spec string, d int) engine.Value {
			if v := p.get(m, spec); v.Kind != engine.Null {
				return v
			}
			return engine.IntVal(int64(d))
		}},
		{Name: "getvs", Fn: func(m *engine.Msg, spec, d string) engine.Value { return orStr(p.get(m, spec), d) }},
		{Name: "geti", Fn: p.geti},
		{Name: "sets", Fn: func(m *engine.Msg, spec, v string) bool { return p.set(m, spec, engine.StrVal(v)) }},
		{Name: "seti", Fn: func(m *engine.Msg, spec string, v int) bool { return p.set(m, spec, engine.IntVal(int64(v))) }},
		{Name: "unset", Fn: func(m *engine.Msg, spec string) bool { return p.set(m, spec, engine.Value{}) }},
		{Name: "is_null", Fn: func(m *engine.Msg, spec string) bool { return p.get(m, spec).Kind == engine.Null }},
	}
}

func orStr(v engine.Value, s string) engine.Value {
	if v.Kind == engine.Null {
		return engine.StrVal(s)
	}
	return v
}

// get returns the value of spec; an invalid or unknown spec is null, as in Kamailio (which logs it).
func (p *PV) get(m *engine.Msg, spec string) engine.Value {
	sp := p.compile(spec)
	if sp == nil {
		return engine.Value{}
	}
	return p.eval(m, sp)
}

// geti is KSR.pv.geti: the integer value; a string's leading number (optional sign, digits: "12abc" is 12,
// as Kamailio's str2sint reads it), 0 otherwise.
func (p *PV) geti(m *engine.Msg, spec string) int {
	v := p.get(m, spec)
	switch v.Kind {
	case engine.Int:
		return int(v.I)
	case engine.Str:
		return leadingInt(strings.TrimSpace(v.S))
	}
	return 0
}

func leadingInt(s string) int {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(s[:j])
	if j == i || err != nil {
		return 0
	}
	return n
}

// set assigns v (Null unsets). Kamailio treats a read-only variable as a silent no-op that succeeds
// (pv_set_spec_value returns 0), so only a bad spec or a failing setter gives false. Transformations of
// the spec are ignored on assignment, as Kamailio's setter does.
func (p *PV) set(m *engine.Msg, spec string, v engine.Value) bool {
	sp := p.compile(spec)
	if sp == nil || m == nil || m.E == nil {
		return false
	}
	cl, ok := p.class(m, sp.Name)
	if !ok {
		return false
	}
	if cl.Set == nil {
		return true
	}
	if err := cl.Set(m, sp.Arg, v); err != nil {
		p.logger().Error("cannot set pseudo-variable", "pv", spec, "err", err)
		return false
	}
	return true
}
