package textops

import (
	"sync"
)

// Kamailio compiles a KEMI function's pattern on every call. Scripts pass constant patterns, so the module
// keeps what it compiled (a compile costs tens of microseconds, a lookup well under one): a bounded map,
// emptied when full so that patterns built from message data cannot grow it without limit.

const maxCached = 1024

type rxKey struct {
	pattern        string
	icase, newline bool
	subst          bool
}

type rxCache struct {
	mu sync.Mutex
	m  map[rxKey]any // *rx or *subst
}

func (c *rxCache) get(k rxKey, build func() (any, error)) (any, error) {
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[rxKey]any)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v, nil
}

// compile returns the textops pattern compiled with Kamailio's flags (case-insensitive, newline-sensitive).
func (t *Textops) compile(pattern string) (*rx, error) {
	return t.compileFlags(pattern, true, true)
}

func (t *Textops) compileFlags(pattern string, icase, newline bool) (*rx, error) {
	v, err := t.cache.get(rxKey{pattern: pattern, icase: icase, newline: newline}, func() (any, error) {
		return compileFlags(pattern, icase, newline)
	})
	if err != nil {
		return nil, err
	}
	return v.(*rx), nil
}

// parseSubst returns the parsed sed-style expression.
func (t *Textops) parseSubst(expr string) (*subst, error) {
	v, err := t.cache.get(rxKey{pattern: expr, subst: true}, func() (any, error) { return parseSubst(expr) })
	if err != nil {
		return nil, err
	}
	return v.(*subst), nil
}
