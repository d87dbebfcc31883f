package htable

import (
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
)

// Exports: KSR.htable.*, as Kamailio 5.6's htable KEMI (names, argument types and return values).
func (h *Htable) Exports() []engine.Export {
	return []engine.Export{
		{Name: "sht_get", Fn: h.shtGet},
		{Name: "sht_gete", Fn: h.shtGetE},
		{Name: "sht_getw", Fn: h.shtGetW},
		{Name: "sht_is_null", Fn: h.shtIsNull},
		{Name: "sht_sets", Fn: h.shtSets},
		{Name: "sht_seti", Fn: h.shtSeti},
		{Name: "sht_setex", Fn: h.shtSetex},
		{Name: "sht_setxs", Fn: h.shtSetxs},
		{Name: "sht_setxi", Fn: h.shtSetxi},
		{Name: "sht_inc", Fn: func(m *engine.Msg, t, k string) int { return h.addOp(t, k, 1) }},
		{Name: "sht_dec", Fn: func(m *engine.Msg, t, k string) int { return h.addOp(t, k, -1) }},
		{Name: "sht_rm", Fn: h.shtRm},
		{Name: "sht_rm_name_re", Fn: func(m *engine.Msg, t, re string) int { return h.rmRe(t, re, false) }},
		{Name: "sht_rm_value_re", Fn: func(m *engine.Msg, t, re string) int { return h.rmRe(t, re, true) }},
		{Name: "sht_rm_name", Fn: func(m *engine.Msg, t, op, v string) int { return h.rmOp(t, op, v, false) }},
		{Name: "sht_rm_value", Fn: func(m *engine.Msg, t, op, v string) int { return h.rmOp(t, op, v, true) }},
		{Name: "sht_match_name", Fn: func(m *engine.Msg, t, op, v string) int { return h.match(t, op, v, false) }},
		{Name: "sht_match_str_value", Fn: func(m *engine.Msg, t, op, v string) int { return h.match(t, op, v, true) }},
		{Name: "sht_reset", Fn: h.shtReset},
		{Name: "sht_lock", Fn: h.shtLock},
		{Name: "sht_unlock", Fn: h.shtUnlock},
		{Name: "sht_iterator_start", Fn: h.iterStart},
		{Name: "sht_iterator_next", Fn: h.iterNext},
		{Name: "sht_iterator_end", Fn: h.iterEnd},
		{Name: "sht_iterator_rm", Fn: h.iterRm},
		{Name: "sht_iterator_sets", Fn: h.iterSets},
		{Name: "sht_iterator_seti", Fn: h.iterSeti},
		{Name: "sht_iterator_setex", Fn: h.iterSetex},
	}
}

// table returns a configured table, logging an unknown name as Kamailio does ("No such htable").
func (h *Htable) table(name string) *table {
	t := h.tables[name]
	if t == nil && h.log != nil {
		h.log.Warn("no such htable", "table", name)
	}
	return t
}

func (it item) value() engine.Value {
	if it.str {
		return engine.StrVal(it.s)
	}
	return engine.IntVal(it.n)
}

// lookup is the read of sht_get and $sht: the item's value; a missing one is initval in an integer table,
// else null. A Redis failure reads as missing (the error is logged by the store).
func (h *Htable) lookup(t *table, key string) engine.Value {
	it, ok, err := t.store.peek(key)
	if ok && err == nil {
		return it.value()
	}
	if t.hasInit {
		return engine.IntVal(t.initVal)
	}
	return engine.Value{}
}

// shtGet returns the value, initval for a missing item of an integer table, else nil.
func (h *Htable) shtGet(m *engine.Msg, tn, key string) engine.Value {
	t := h.table(tn)
	if t == nil {
		return engine.Value{}
	}
	return h.lookup(t, key)
}

// shtGetE is sht_get with "" instead of nil (Kamailio's SR_KEMI_XVAL_NULL_EMPTY).
func (h *Htable) shtGetE(m *engine.Msg, tn, key string) engine.Value {
	if v := h.shtGet(m, tn, key); v.Kind != engine.Null {
		return v
	}
	return engine.StrVal("")
}

// shtGetW is sht_get with "<null>" instead of nil (Kamailio's SR_KEMI_XVAL_NULL_PRINT).
func (h *Htable) shtGetW(m *engine.Msg, tn, key string) engine.Value {
	if v := h.shtGet(m, tn, key); v.Kind != engine.Null {
		return v
	}
	return engine.StrVal("<null>")
}

// shtIsNull: 2 no such table, -2 the table has initval (never null), -1 the item exists, 1 it does not.
func (h *Htable) shtIsNull(m *engine.Msg, tn, key string) int {
	t := h.tables[tn]
	switch {
	case t == nil:
		return 2
	case t.hasInit:
		return -2
	}
	if _, ok, _ := t.store.peek(key); ok {
		return -1
	}
	return 1
}

func (h *Htable) setItem(tn, key string, it item, ttlMs int64) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	if err := t.store.set(key, it, ttlMs); err != nil {
		return -1
	}
	return 1
}

func (h *Htable) shtSets(m *engine.Msg, tn, key, val string) int {
	return h.setItem(tn, key, item{str: true, s: val}, 0)
}

func (h *Htable) shtSeti(m *engine.Msg, tn, key string, val int) int {
	return h.setItem(tn, key, item{n: int64(val)}, 0)
}

// shtSetxs sets a string with its own lifetime in seconds (<= 0: the table's rules).
func (h *Htable) shtSetxs(m *engine.Msg, tn, key, val string, exp int) int {
	return h.setItem(tn, key, item{str: true, s: val}, max(int64(exp), 0)*1000)
}

func (h *Htable) shtSetxi(m *engine.Msg, tn, key string, val, exp int) int {
	return h.setItem(tn, key, item{n: int64(val)}, max(int64(exp), 0)*1000)
}

// shtSetex sets the lifetime of an existing item, in seconds from now (<= 0: never expires). As in
// Kamailio it does nothing (and returns 1) in a table without autoexpire.
func (h *Htable) shtSetex(m *engine.Msg, tn, key string, exp int) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	if t.expireMs == 0 {
		return 1
	}
	if err := t.store.setExpire(key, int64(exp)); err != nil {
		return -1
	}
	return 1
}

// addOp is sht_inc/sht_dec: the new value, or -255 (Kamailio's KSR_HT_KEMI_NOINTVAL) for no such table,
// a string item, or a missing item in a table without initval.
func (h *Htable) addOp(tn, key string, delta int64) int {
	t := h.table(tn)
	if t == nil {
		return noIntVal
	}
	n, ok, err := t.store.add(key, delta)
	if !ok || err != nil {
		return noIntVal
	}
	return int(n)
}

func (h *Htable) shtRm(m *engine.Msg, tn, key string) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	if err := t.store.del(key); err != nil {
		return -1
	}
	return 1
}

// compileRe compiles a Kamailio (POSIX extended, case-insensitive) expression.
func compileRe(re string) (*regexp.Regexp, error) { return regexp.Compile("(?i)" + re) }

// rmRe removes the items whose name (or string value) matches re: 1 (also for no such table, as in
// Kamailio), -1 for a bad expression.
func (h *Htable) rmRe(tn, re string, byValue bool) int {
	t := h.tables[tn]
	if t == nil {
		return 1
	}
	rx, err := compileRe(re)
	if re == "" || err != nil {
		h.log.Warn("htable: bad regular expression", "table", tn, "re", re, "err", err)
		return -1
	}
	_, err = t.store.deleteIf(func(k string, it item) bool {
		if byValue {
			return it.str && rx.MatchString(it.s)
		}
		return rx.MatchString(k)
	})
	if err != nil {
		return -1
	}
	return 1
}

// rmOp is sht_rm_name/sht_rm_value with an operator: re (regular expression), sw (starts with), ew (ends
// with), in (contains). 1 done, -1 no such table, bad operator or empty value.
func (h *Htable) rmOp(tn, op, val string, byValue bool) int {
	t := h.table(tn)
	if t == nil || val == "" {
		return -1
	}
	var f func(string) bool
	switch op {
	case "re":
		return h.rmRe(tn, val, byValue)
	case "sw":
		f = func(s string) bool { return strings.HasPrefix(s, val) }
	case "ew":
		f = func(s string) bool { return strings.HasSuffix(s, val) }
	case "in":
		f = func(s string) bool { return strings.Contains(s, val) }
	default:
		h.log.Warn("htable: unsupported match operator", "op", op)
		return -1
	}
	_, err := t.store.deleteIf(func(k string, it item) bool {
		if byValue {
			return it.str && f(it.s)
		}
		return f(k)
	})
	if err != nil {
		return -1
	}
	return 1
}

// match is sht_match_name/sht_match_str_value: 1 when an item's name (string value) matches with op eq,
// ne, re or sw; -1 when none does, for no such table or a bad operator.
func (h *Htable) match(tn, op, val string, byValue bool) int {
	t := h.table(tn)
	if t == nil || val == "" {
		return -1
	}
	var f func(string) bool
	switch op {
	case "eq":
		if !byValue { // a name match is one lookup, not a walk
			if _, ok, _ := t.store.peek(val); ok {
				return 1
			}
			return -1
		}
		f = func(s string) bool { return s == val }
	case "ne":
		f = func(s string) bool { return s != val }
	case "sw":
		f = func(s string) bool { return strings.HasPrefix(s, val) }
	case "re":
		rx, err := compileRe(val)
		if err != nil {
			h.log.Warn("htable: bad regular expression", "table", tn, "re", val, "err", err)
			return -1
		}
		f = rx.MatchString
	default:
		h.log.Warn("htable: unsupported match operator", "op", op)
		return -1
	}
	found := false
	err := t.store.walk(func(k string, it item) bool {
		if byValue {
			found = it.str && f(it.s)
		} else {
			found = f(k)
		}
		return !found
	})
	if found && err == nil {
		return 1
	}
	return -1
}

// shtReset removes every item: 0 (Kamailio's KEMI returns 0 here), -1 no such table.
func (h *Htable) shtReset(m *engine.Msg, tn string) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	if err := t.store.reset(); err != nil {
		return -1
	}
	return 0
}

// msgState is htable's state for one message (engine.Msg.ModState("htable")): its iterators and the locks it
// holds. Kamailio keeps both per worker process; here they belong to the message, so a script that forgets
// sht_iterator_end leaks nothing into the next message.
type msgState struct {
	iters []*iterator
	locks map[*slotLock]int // held lock → nesting depth (Kamailio's slot locks are recursive)
}

func state(m *engine.Msg) *msgState {
	if st, ok := m.ModState("htable").(*msgState); ok {
		return st
	}
	st := &msgState{}
	m.SetModState("htable", st)
	return st
}

// slotLock is sht_lock's lock of one slot of a table. It is separate from the store's shard locks: a
// script holding it does not block plain reads and writes of other workers, only their sht_lock of the
// same slot (the read-modify-write pattern it exists for). A worker never waits longer than lock_timeout,
// and a lock is held at most lock_lease, so a script that forgets sht_unlock cannot stall the proxy.
type slotLock struct {
	mu    sync.Mutex
	owner *msgState
	until time.Time
}

// shtLock: 1 locked (or already held by this message), -1 no such table or lock_timeout passed.
func (h *Htable) shtLock(m *engine.Msg, tn, key string) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	st := state(m)
	l := &t.locks[t.slot(key)]
	if st.locks[l] > 0 {
		st.locks[l]++
		return 1
	}
	deadline := time.Now().Add(time.Duration(h.LockTimeout) * time.Millisecond)
	for {
		now := time.Now()
		l.mu.Lock()
		if l.owner == nil || now.After(l.until) {
			if l.owner != nil {
				h.log.Warn("htable: lock held past lock_lease taken over (missing sht_unlock?)", "table", tn, "key", key)
			}
			l.owner, l.until = st, now.Add(time.Duration(h.LockLease)*time.Millisecond)
			l.mu.Unlock()
			if st.locks == nil {
				st.locks = map[*slotLock]int{}
			}
			st.locks[l] = 1
			return 1
		}
		l.mu.Unlock()
		if now.After(deadline) {
			return -1
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// shtUnlock: 1 released (one nesting level), -1 no such table or not held by this message.
func (h *Htable) shtUnlock(m *engine.Msg, tn, key string) int {
	t := h.table(tn)
	if t == nil {
		return -1
	}
	st := state(m)
	l := &t.locks[t.slot(key)]
	if st.locks[l] == 0 {
		return -1
	}
	if st.locks[l]--; st.locks[l] > 0 {
		return 1
	}
	delete(st.locks, l)
	l.mu.Lock()
	if l.owner == st {
		l.owner = nil
	}
	l.mu.Unlock()
	return 1
}
