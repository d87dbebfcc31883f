package pv

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplua/siplua/engine"
)

// maxCached bounds the compiled-spec cache: scripts use a fixed set of literal specs, but one that builds
// specs from message data ("$var(" .. x .. ")") must not grow memory without end; past the bound specs
// are compiled on every use.
const maxCached = 8192

// specCache holds compiled specs and format strings by their text, and the names already reported, so
// that each is parsed (and each problem logged) once, not per message.
type specCache struct {
	specs   sync.Map // string -> *Spec, or error for an invalid one
	formats sync.Map // string -> *Format
	n       atomic.Int64
	logged  sync.Map // problem key -> struct{}
	nlogged atomic.Int64
}

func (c *specCache) store(m *sync.Map, key string, v any) {
	if c.n.Load() < maxCached {
		if _, loaded := m.LoadOrStore(key, v); !loaded {
			c.n.Add(1)
		}
	}
}

// once reports whether key is new (and remembers it, up to a bound).
func (c *specCache) once(key string) bool {
	if _, ok := c.logged.Load(key); ok {
		return false
	}
	if c.nlogged.Load() >= maxCached {
		return false
	}
	if _, loaded := c.logged.LoadOrStore(key, struct{}{}); loaded {
		return false
	}
	c.nlogged.Add(1)
	return true
}

// compile returns the compiled spec, nil when it is invalid (logged once per spec).
func (p *PV) compile(spec string) *Spec {
	if v, ok := p.cache.specs.Load(spec); ok {
		if sp, ok := v.(*Spec); ok {
			return sp
		}
		return nil
	}
	sp, err := Compile(spec)
	if err != nil {
		p.cache.store(&p.cache.specs, spec, err)
		if p.cache.once("invalid:" + spec) {
			p.logger().Error("invalid pseudo-variable (reported once)", "pv", spec, "err", err)
		}
		return nil
	}
	p.cache.store(&p.cache.specs, spec, sp)
	return sp
}

// class finds a variable class among the loaded modules' variables; an unknown one is logged once per
// name (Kamailio refuses such a script at startup; siplua -c reports literal ones).
func (p *PV) class(m *engine.Msg, name string) (engine.PV, bool) {
	if m == nil || m.E == nil {
		return engine.PV{}, false
	}
	cl, ok := m.E.LookupPV(name)
	if !ok && p.cache.once("unknown:"+name) {
		p.logger().Error("unknown pseudo-variable (reported once per name)", "pv", "$"+name)
	}
	return cl, ok
}

// eval reads a compiled spec: the class's value (or the indexed one), then the transformations.
func (p *PV) eval(m *engine.Msg, sp *Spec) engine.Value {
	cl, ok := p.class(m, sp.Name)
	if !ok || cl.Get == nil {
		return engine.Value{}
	}
	var v engine.Value
	if sp.Idx.Kind != IdxNone && indexers[sp.Name] != nil {
		v = p.indexed(m, sp)
	} else {
		v = cl.Get(m, sp.Arg)
	}
	if len(sp.Trans) > 0 {
		v = p.applyTrans(m, sp.Trans, v)
	}
	return v
}

// An indexer returns every value of a multi-valued variable, first (index 0) first, and the separator
// Kamailio puts between them for [*].
type indexer struct {
	all func(p *PV, m *engine.Msg, arg string) []engine.Value
	sep string
}

// indexers are the classes of this module that take an index; others ignore it, as in Kamailio.
var indexers = map[string]*indexer{
	"hdr": {all: func(_ *PV, m *engine.Msg, name string) []engine.Value {
		return strVals(m.Headers(name))
	}, sep: ","},
	"avp": {all: func(_ *PV, m *engine.Msg, name string) []engine.Value {
		s := m.AVPs[name]
		out := make([]engine.Value, len(s))
		for i := range s { // the newest value is index 0, as Kamailio adds AVPs at the head
			out[i] = s[len(s)-1-i]
		}
		return out
	}, sep: ", "},
	// $hfl: [*] joins whole headers like $hdr; a numeric index counts bodies (see hflIndexed)
	"hfl": {all: func(_ *PV, m *engine.Msg, name string) []engine.Value { return strVals(m.Headers(name)) }, sep: ","},
	// Kamailio gives null for $(xavp(x)[n]): the index belongs inside, $xavp(x[n])
	"xavp": {all: func(*PV, *engine.Msg, string) []engine.Value { return nil }},
	"xavu": {all: func(*PV, *engine.Msg, string) []engine.Value { return nil }},
	"xavi": {all: func(*PV, *engine.Msg, string) []engine.Value { return nil }},
}

func strVals(ss []string) []engine.Value {
	out := make([]engine.Value, len(ss))
	for i, s := range ss {
		out[i] = engine.StrVal(s)
	}
	return out
}

func (p *PV) indexed(m *engine.Msg, sp *Spec) engine.Value {
	ix := indexers[sp.Name]
	n := sp.Idx.N
	if sp.Idx.Kind == IdxInt && sp.Name == "hdr" {
		return nthHeader(m, sp.Arg, n) // the common case, without collecting every value
	}
	vals := ix.all(p, m, sp.Arg)
	switch sp.Idx.Kind {
	case IdxAll:
		if len(vals) == 0 {
			return engine.Value{}
		}
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString(ix.sep)
			}
			b.WriteString(v.String())
		}
		return engine.StrVal(b.String())
	case IdxPV:
		iv := p.eval(m, sp.Idx.PV)
		if iv.Kind != engine.Int {
			return engine.Value{}
		}
		n = int(iv.I)
	}
	if sp.Name == "hdr" {
		return nthHeader(m, sp.Arg, n)
	}
	if sp.Name == "hfl" && hflSplits(sp.Arg) {
		return hflIndexed(m, sp.Arg, n)
	}
	if n < 0 {
		n += len(vals)
	}
	if n < 0 || n >= len(vals) {
		return engine.Value{}
	}
	return vals[n]
}

// CheckSpec validates a literal spec for siplua -c: it must parse, and it and the specs inside it (index,
// transformation parameters) must name known variable classes.
func (p *PV) CheckSpec(spec string, known func(string) bool) error {
	sp, err := Compile(spec)
	if err != nil {
		return err
	}
	return checkKnown(sp, known)
}

// CheckFormat validates a literal xlog/evalx format string the same way.
func (p *PV) CheckFormat(format string, known func(string) bool) error {
	f, err := CompileFormat(format)
	if err != nil {
		return err
	}
	for _, sp := range f.Specs() {
		if err := checkKnown(sp, known); err != nil {
			return err
		}
	}
	return nil
}

func checkKnown(sp *Spec, known func(string) bool) error {
	if !known(sp.Name) {
		return fmt.Errorf("unknown pseudo-variable $%s in %q", sp.Name, sp.Raw)
	}
	if sp.Idx.PV != nil {
		if err := checkKnown(sp.Idx.PV, known); err != nil {
			return err
		}
	}
	for _, tr := range sp.Trans {
		for _, a := range tr.args {
			if a.pv != nil {
				if err := checkKnown(a.pv, known); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// nthHeader is $(hdr(name)[n]): the n-th header of that name (negative from the last), null when out of
// range.
func nthHeader(m *engine.Msg, name string, n int) engine.Value {
	lname := engine.HeaderName(name)
	if n < 0 {
		count := 0
		for _, h := range m.Raw.Hdrs {
			if h.Is(m.Buf, lname) {
				count++
			}
		}
		n += count
		if n < 0 {
			return engine.Value{}
		}
	}
	for _, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			if n == 0 {
				return engine.StrVal(string(h.Value(m.Buf)))
			}
			n--
		}
	}
	return engine.Value{}
}
