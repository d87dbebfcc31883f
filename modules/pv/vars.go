package pv

import (
	"errors"

	"github.com/siplua/siplua/engine"
)

var errNoName = errors.New("a variable name is required")

// $var(name): per worker, kept across messages; unset or never set reads as integer 0 (never null), as
// Kamailio's script variables.
func getVar(m *engine.Msg, name string) engine.Value {
	if v, ok := m.Vars[name]; ok {
		return v
	}
	if name == "" {
		return engine.Value{}
	}
	return engine.IntVal(0)
}

func setVar(m *engine.Msg, name string, v engine.Value) error {
	if name == "" {
		return errNoName
	}
	if v.Kind == engine.Null {
		delete(m.Vars, name)
		return nil
	}
	if m.Vars == nil {
		m.Vars = map[string]engine.Value{}
	}
	m.Vars[name] = v
	return nil
}

// $avp(name): per message, a stack: a set adds a value on top, get reads the top, unset removes the top.
func getAVP(m *engine.Msg, name string) engine.Value {
	if s := m.AVPs[name]; len(s) > 0 {
		return s[len(s)-1]
	}
	return engine.Value{}
}

func setAVP(m *engine.Msg, name string, v engine.Value) error {
	if name == "" {
		return errNoName
	}
	s := m.AVPs[name]
	if v.Kind == engine.Null {
		if len(s) > 0 {
			m.AVPs[name] = s[:len(s)-1]
		}
		return nil
	}
	if m.AVPs == nil {
		m.AVPs = map[string][]engine.Value{}
	}
	m.AVPs[name] = append(s, v)
	return nil
}

// $shv(name): shared by all workers; like $var it reads as 0 when unset.
func (p *PV) getShv(_ *engine.Msg, name string) engine.Value {
	if name == "" {
		return engine.Value{}
	}
	p.shvMu.RLock()
	v, ok := p.shv[name]
	p.shvMu.RUnlock()
	if !ok {
		return engine.IntVal(0)
	}
	return v
}

func (p *PV) setShv(_ *engine.Msg, name string, v engine.Value) error {
	if name == "" {
		return errNoName
	}
	p.shvMu.Lock()
	defer p.shvMu.Unlock()
	if v.Kind == engine.Null {
		p.shv[name] = engine.StrVal("") // Kamailio: an unset $shv reads "" (a never-set one 0)
	} else {
		p.shv[name] = v
	}
	return nil
}
