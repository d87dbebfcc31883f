package pv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// Extended AVPs (Kamailio's xavp, xavu and xavi): per message lists of named values, where a value may be
// a list of named child values. A name holds a stack: index 0 is the newest. $xavu keeps one value per
// name; $xavi matches names without case. They live in m.ModState (a message's transaction copy shares them).

type xavKind uint8

const (
	kindXavp xavKind = iota
	kindXavu
	kindXavi
)

const modKey = "pv.xavp"

type xitem struct {
	name string
	v    engine.Value
	sub  *xlist // non-nil: the value is a list of children
}

// xlist keeps its items newest first, as Kamailio prepends.
type xlist struct {
	items []xitem
	fold  bool // names match without case ($xavi)
}

type xavps struct{ l [3]xlist }

func getXavps(m *engine.Msg, create bool) *xavps {
	if x, ok := m.ModState(modKey).(*xavps); ok {
		return x
	}
	if !create {
		return nil
	}
	x := &xavps{}
	x.l[kindXavi].fold = true
	m.SetModState(modKey, x)
	return x
}

func rootList(m *engine.Msg, k xavKind, create bool) *xlist {
	x := getXavps(m, create)
	if x == nil {
		return nil
	}
	return &x.l[k]
}

func (l *xlist) eq(a, b string) bool {
	if l.fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// positions returns the slice indexes of name's values, newest first.
func (l *xlist) positions(name string) []int {
	if l == nil {
		return nil
	}
	var out []int
	for i := range l.items {
		if l.eq(l.items[i].name, name) {
			out = append(out, i)
		}
	}
	return out
}

func (l *xlist) count(name string) int { return len(l.positions(name)) }

// at returns name's value at idx (negative from the oldest), nil when out of range.
func (l *xlist) at(name string, idx int) *xitem {
	if l == nil {
		return nil
	}
	if idx >= 0 {
		for i := range l.items {
			if l.eq(l.items[i].name, name) {
				if idx == 0 {
					return &l.items[i]
				}
				idx--
			}
		}
		return nil
	}
	pos := l.positions(name)
	idx += len(pos)
	if idx < 0 {
		return nil
	}
	return &l.items[pos[idx]]
}

func (l *xlist) add(it xitem) {
	l.items = append(l.items, xitem{})
	copy(l.items[1:], l.items)
	l.items[0] = it
}

// rm removes name's value at idx, or all of them; it returns how many went.
func (l *xlist) rm(name string, idx int, all bool) int {
	if l == nil {
		return 0
	}
	pos := l.positions(name)
	if !all {
		if idx < 0 {
			idx += len(pos)
		}
		if idx < 0 || idx >= len(pos) {
			return 0
		}
		pos = pos[idx : idx+1]
	}
	for k := len(pos) - 1; k >= 0; k-- {
		i := pos[k]
		l.items = append(l.items[:i], l.items[i+1:]...)
	}
	return len(pos)
}

// setUnique is $xavu's assignment: replace the value of name, or add it.
func (l *xlist) setUnique(it xitem) {
	if cur := l.at(it.name, 0); cur != nil {
		*cur = it
		l.rm(it.name, 1, false)
		return
	}
	l.add(it)
}

func (it *xitem) value() engine.Value {
	if it.sub != nil {
		return engine.StrVal(fmt.Sprintf("<<xavp:%p>>", it.sub))
	}
	return it.v
}

// xname is a parsed "root[idx]=>child[idx]".
type xname struct {
	root, child      string
	rIdx, cIdx       int
	rHas, cHas       bool // an index was written
	rAll, cAll       bool // [*]
	hasChild, broken bool
}

func parseXName(arg string) xname {
	var x xname
	r, c, hasChild := strings.Cut(arg, "=>")
	x.hasChild = hasChild
	var ok1, ok2 = true, true
	x.root, x.rIdx, x.rHas, x.rAll, ok1 = splitIdx(strings.TrimSpace(r))
	if hasChild {
		x.child, x.cIdx, x.cHas, x.cAll, ok2 = splitIdx(strings.TrimSpace(c))
	}
	x.broken = !ok1 || !ok2 || x.root == "" || hasChild && x.child == ""
	return x
}

func splitIdx(s string) (name string, idx int, has, all, ok bool) {
	lb := strings.IndexByte(s, '[')
	if lb < 0 {
		return s, 0, false, false, true
	}
	if !strings.HasSuffix(s, "]") {
		return "", 0, false, false, false
	}
	in := s[lb+1 : len(s)-1]
	if in == "*" {
		return s[:lb], 0, true, true, true
	}
	n, err := strconv.Atoi(in)
	if err != nil {
		return "", 0, false, false, false
	}
	return s[:lb], n, true, false, true
}

func xavpGetter(k xavKind) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, arg string) engine.Value {
		x := parseXName(arg)
		if x.broken {
			return engine.Value{}
		}
		l := rootList(m, k, false)
		it := l.at(x.root, x.rIdx)
		if it == nil {
			return engine.Value{}
		}
		if !x.hasChild {
			return it.value()
		}
		if it.sub == nil {
			return engine.Value{}
		}
		if x.cAll {
			var parts []string
			for _, i := range it.sub.positions(x.child) {
				parts = append(parts, it.sub.items[i].value().String())
			}
			if len(parts) == 0 {
				return engine.Value{}
			}
			return engine.StrVal(strings.Join(parts, ", "))
		}
		c := it.sub.at(x.child, x.cIdx)
		if c == nil {
			return engine.Value{}
		}
		return c.value()
	}
}

var (
	errXName   = errors.New("invalid xavp name")
	errXAll    = errors.New("cannot assign to all values ([*])")
	errXNoList = errors.New("the xavp does not hold a list of children")
)

// xavpSetter follows Kamailio's pv_set_xavp: without an index a value is added as the newest; with one
// the value at that index is replaced; "root=>child" without a root index adds a new root holding child,
// "root[i]=>child" adds child to root[i]. Null removes.
func xavpSetter(k xavKind) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, arg string, v engine.Value) error {
		x := parseXName(arg)
		if x.broken {
			return errXName
		}
		l := rootList(m, k, true)
		if v.Kind == engine.Null {
			if !x.hasChild {
				l.rm(x.root, x.rIdx, x.rAll)
				return nil
			}
			for _, i := range l.positions(x.root) {
				if it := &l.items[i]; it.sub != nil {
					it.sub.rm(x.child, x.cIdx, x.cAll)
				}
				if !x.rAll {
					break
				}
			}
			return nil
		}
		if k == kindXavu {
			if !x.hasChild {
				l.setUnique(xitem{name: x.root, v: v})
				return nil
			}
			it := l.at(x.root, 0)
			if it == nil || it.sub == nil {
				sub := &xlist{}
				sub.add(xitem{name: x.child, v: v})
				l.setUnique(xitem{name: x.root, sub: sub})
				return nil
			}
			it.sub.setUnique(xitem{name: x.child, v: v})
			return nil
		}
		if !x.hasChild {
			if x.rAll {
				return errXAll
			}
			if !x.rHas {
				l.add(xitem{name: x.root, v: v})
				return nil
			}
			if it := l.at(x.root, x.rIdx); it != nil {
				it.v, it.sub = v, nil
				return nil
			}
			return errXName
		}
		if !x.rHas {
			sub := &xlist{fold: l.fold}
			sub.add(xitem{name: x.child, v: v})
			l.add(xitem{name: x.root, sub: sub})
			return nil
		}
		if x.rAll || x.cAll {
			return nil
		}
		it := l.at(x.root, x.rIdx)
		if it == nil {
			return nil
		}
		if it.sub == nil {
			return errXNoList
		}
		if x.cHas {
			if c := it.sub.at(x.child, x.cIdx); c != nil {
				c.v, c.sub = v, nil
			}
			return nil
		}
		it.sub.add(xitem{name: x.child, v: v})
		return nil
	}
}
