package htable

import (
	"errors"
	"fmt"
	"strings"

	"github.com/siplua/siplua/engine"
)

// PVs: $sht(table=>key) (read/write; assigning null removes the item), $shtex(table=>key) (the seconds
// the item has left, 0 = no expiry; assigning sets them as sht_setex), $shtinc/$shtdec(table=>key) (read:
// increment and return, as Kamailio), $shtitkey(iter) and $shtitval(iter) (the current item of an
// iterator).
func (h *Htable) PVs() []engine.PV {
	return []engine.PV{
		{Name: "sht", Get: h.pvGet, Set: h.pvSet},
		{Name: "shtex", Get: h.pvGetEx, Set: h.pvSetEx},
		{Name: "shtinc", Get: func(m *engine.Msg, arg string) engine.Value { return h.pvAdd(arg, 1) }},
		{Name: "shtdec", Get: func(m *engine.Msg, arg string) engine.Value { return h.pvAdd(arg, -1) }},
		{Name: "shtitkey", Get: func(m *engine.Msg, arg string) engine.Value {
			if it := current(m, arg); it != nil {
				return engine.StrVal(it.keys[it.pos])
			}
			return engine.Value{}
		}},
		{Name: "shtitval", Get: func(m *engine.Msg, arg string) engine.Value {
			if it := current(m, arg); it != nil {
				return it.it.value()
			}
			return engine.Value{}
		}},
	}
}

// pvTable splits "table=>key" and finds the table.
func (h *Htable) pvTable(arg string) (*table, string, error) {
	tn, key, ok := strings.Cut(arg, "=>")
	if !ok || tn == "" {
		return nil, "", fmt.Errorf("$sht(%s): expected table=>key", arg)
	}
	t := h.tables[tn]
	if t == nil {
		return nil, "", fmt.Errorf("$sht(%s): no such htable %q", arg, tn)
	}
	return t, key, nil
}

func (h *Htable) pvGet(m *engine.Msg, arg string) engine.Value {
	t, key, err := h.pvTable(arg)
	if err != nil {
		return engine.Value{}
	}
	return h.lookup(t, key)
}

func (h *Htable) pvSet(m *engine.Msg, arg string, v engine.Value) error {
	t, key, err := h.pvTable(arg)
	if err != nil {
		return err
	}
	switch v.Kind {
	case engine.Null:
		err = t.store.del(key)
	case engine.Int:
		err = t.store.set(key, item{n: v.I}, 0)
	default:
		err = t.store.set(key, item{str: true, s: v.S}, 0)
	}
	if err != nil {
		return fmt.Errorf("$sht(%s): %w", arg, err)
	}
	return nil
}

func (h *Htable) pvGetEx(m *engine.Msg, arg string) engine.Value {
	t, key, err := h.pvTable(arg)
	if err != nil {
		return engine.Value{}
	}
	it, ok, err := t.store.get(key)
	if !ok || err != nil || it.exp == 0 {
		return engine.IntVal(0)
	}
	left := (it.exp - nowMs() + 999) / 1000 // round up: an item with 0.3 s left is still there
	return engine.IntVal(max(left, 0))
}

func (h *Htable) pvSetEx(m *engine.Msg, arg string, v engine.Value) error {
	t, key, err := h.pvTable(arg)
	if err != nil {
		return err
	}
	if v.Kind != engine.Int {
		return errors.New("$shtex: expected an integer (seconds)")
	}
	if t.expireMs == 0 { // as sht_setex: only tables with autoexpire
		return nil
	}
	return t.store.setExpire(key, v.I)
}

func (h *Htable) pvAdd(arg string, delta int64) engine.Value {
	t, key, err := h.pvTable(arg)
	if err != nil {
		return engine.Value{}
	}
	n, ok, err := t.store.add(key, delta)
	if !ok || err != nil {
		return engine.Value{}
	}
	return engine.IntVal(n)
}
