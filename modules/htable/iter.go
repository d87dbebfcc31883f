package htable

import "github.com/siplua/siplua/engine"

// iterator walks a table for sht_iterator_*: the keys are taken when it starts and each one is read again
// when reached, so an item removed or expired meanwhile is skipped and no lock is held between calls
// (Kamailio holds the slot lock from one sht_iterator_next to the next).
type iterator struct {
	name string
	t    *table
	keys []string
	pos  int  // index of the current key
	cur  bool // pos is a current item
	it   item // its value as last read or set
}

func (st *msgState) iter(name string) *iterator {
	for _, it := range st.iters {
		if it.name == name {
			return it
		}
	}
	return nil
}

// iterStart: 1 started, -1 empty name, no such table, or already 4 iterators (Kamailio's limit).
func (h *Htable) iterStart(m *engine.Msg, iname, tn string) int {
	if iname == "" || tn == "" {
		return -1
	}
	st := state(m)
	it := st.iter(iname)
	if it == nil {
		if len(st.iters) >= maxIterators {
			h.log.Warn("htable: no iterator available", "max", maxIterators)
			return -1
		}
		it = &iterator{name: iname}
		st.iters = append(st.iters, it)
	}
	t := h.table(tn)
	if t == nil {
		it.t = nil
		return -1
	}
	*it = iterator{name: iname, t: t, pos: -1}
	err := t.store.walk(func(k string, _ item) bool { it.keys = append(it.keys, k); return true })
	if err != nil {
		it.t = nil
		return -1
	}
	return 1
}

// advance moves to the next key that still has a live item.
func (it *iterator) advance() bool {
	for it.pos+1 < len(it.keys) {
		it.pos++
		v, ok, err := it.t.store.peek(it.keys[it.pos])
		if ok && err == nil {
			it.cur, it.it = true, v
			return true
		}
	}
	it.pos = len(it.keys)
	it.cur = false
	return false
}

// iterNext: 1 on the next item, -1 at the end (or no such iterator).
func (h *Htable) iterNext(m *engine.Msg, iname string) int {
	it := state(m).iter(iname)
	if it == nil || it.t == nil || !it.advance() {
		return -1
	}
	return 1
}

// iterEnd: 1 released, -1 no such iterator.
func (h *Htable) iterEnd(m *engine.Msg, iname string) int {
	st := state(m)
	for i, it := range st.iters {
		if it.name == iname {
			st.iters = append(st.iters[:i], st.iters[i+1:]...)
			return 1
		}
	}
	return -1
}

// current returns the iterator positioned on an item.
func current(m *engine.Msg, iname string) *iterator {
	it := state(m).iter(iname)
	if it == nil || it.t == nil || !it.cur {
		return nil
	}
	return it
}

// iterRm removes the current item and moves to the next one, as Kamailio does: 1 on the next item, -2 at
// the end, -1 no current item.
func (h *Htable) iterRm(m *engine.Msg, iname string) int {
	it := current(m, iname)
	if it == nil {
		return -1
	}
	if err := it.t.store.del(it.keys[it.pos]); err != nil {
		return -1
	}
	if !it.advance() {
		return -2
	}
	return 1
}

func (h *Htable) iterSet(m *engine.Msg, iname string, v item) int {
	it := current(m, iname)
	if it == nil {
		return -1
	}
	if err := it.t.store.set(it.keys[it.pos], v, 0); err != nil {
		return -1
	}
	it.it = v
	return 1
}

// iterSets and iterSeti set the current item's value (updateexpire applies): 1, or -1 no current item.
func (h *Htable) iterSets(m *engine.Msg, iname, val string) int {
	return h.iterSet(m, iname, item{str: true, s: val})
}

func (h *Htable) iterSeti(m *engine.Msg, iname string, val int) int {
	return h.iterSet(m, iname, item{n: int64(val)})
}

// iterSetex sets the current item's lifetime in seconds from now (<= 0: never expires).
func (h *Htable) iterSetex(m *engine.Msg, iname string, exp int) int {
	it := current(m, iname)
	if it == nil {
		return -1
	}
	if err := it.t.store.setExpire(it.keys[it.pos], int64(exp)); err != nil {
		return -1
	}
	return 1
}
