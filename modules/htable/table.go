package htable

import (
	"sync"
	"sync/atomic"
)

// item is one value: a string or an integer, with its absolute expiry (Unix milliseconds, 0 = never).
type item struct {
	str bool
	s   string
	n   int64
	exp int64
}

func (it item) live(now int64) bool { return it.exp == 0 || now < it.exp }

// store is a table's backend. Every method is safe for concurrent use; the redis store bounds each call
// by redis_timeout and returns an error rather than wait longer. Table rules (autoexpire, updateexpire,
// initval) are applied by the store, so that the redis store can apply them atomically on the server.
type store interface {
	// get returns the live item of key with its expiry.
	get(key string) (item, bool, error)
	// peek is get without the expiry (one Redis command instead of two): the read of sht_get and $sht.
	peek(key string) (item, bool, error)
	// set stores a value; ttlMs > 0 is an explicit lifetime (sht_setxs), 0 applies the table's
	// autoexpire/updateexpire rules.
	set(key string, it item, ttlMs int64) error
	// setExpire sets the lifetime of an existing item (secs <= 0: never expires).
	setExpire(key string, secs int64) error
	// add adds delta to an integer item (a missing one starts from initval); ok=false for a string item
	// or a missing one in a table without initval.
	add(key string, delta int64) (n int64, ok bool, err error)
	// del removes key.
	del(key string) error
	// walk calls fn for every live item until fn returns false. Not for hot paths.
	walk(fn func(key string, it item) bool) error
	// deleteIf removes the live items fn selects; it returns how many.
	deleteIf(fn func(key string, it item) bool) (int, error)
	// reset removes every item.
	reset() error
	// count is the number of items (approximate: may include expired ones not yet swept; the redis
	// store's as last counted).
	count() int
	// sweep removes expired items (the memory store; the redis store recounts).
	sweep(now int64)
	close()
}

// table is one named table.
type table struct {
	name         string
	conf         *TableConf
	slots        int
	expireMs     int64
	updateExpire bool
	hasInit      bool
	initVal      int64
	store        store
	locks        []slotLock
}

// slot returns the slot of a key (FNV-1a, as stable as Kamailio's core hash for lock granularity).
func (t *table) slot(key string) int {
	return int(hashKey(key) & uint32(t.slots-1))
}

func hashKey(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}

// memStore is the memory backend: 2^size shards, each a map under its own lock, so workers touching
// different keys rarely contend and an increment is atomic under its shard's lock.
type memStore struct {
	t      *table
	shards []memShard
	n      atomic.Int64
	gen    *atomic.Uint64 // the module's change counter (snapshot dirtiness)
}

type memShard struct {
	mu sync.RWMutex
	m  map[string]item
	_  [40]byte // keep shards on separate cache lines
}

func newMemStore(t *table, gen *atomic.Uint64) *memStore {
	s := &memStore{t: t, shards: make([]memShard, t.slots), gen: gen}
	for i := range s.shards {
		s.shards[i].m = map[string]item{}
	}
	return s
}

func (s *memStore) shard(key string) *memShard {
	return &s.shards[hashKey(key)&uint32(len(s.shards)-1)]
}

func (s *memStore) get(key string) (item, bool, error) {
	sh := s.shard(key)
	sh.mu.RLock()
	it, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok || (it.exp != 0 && !it.live(nowMs())) { // the clock is read only for items that expire
		return item{}, false, nil
	}
	return it, true, nil
}

// expiryFor computes an item's expiry under Kamailio's rules: an explicit lifetime wins; a new item gets
// autoexpire; an updated one gets it again when updateexpire is set, else keeps its expiry.
func (t *table) expiryFor(old item, existed bool, ttlMs, now int64) int64 {
	switch {
	case ttlMs > 0:
		return now + ttlMs
	case existed && !t.updateExpire:
		return old.exp
	case t.expireMs > 0:
		return now + t.expireMs
	}
	return 0
}

func (s *memStore) peek(key string) (item, bool, error) { return s.get(key) }

func (s *memStore) set(key string, it item, ttlMs int64) error {
	now := nowMs()
	sh := s.shard(key)
	sh.mu.Lock()
	old, ok := sh.m[key]
	live := ok && old.live(now)
	it.exp = s.t.expiryFor(old, live, ttlMs, now)
	sh.m[key] = it
	sh.mu.Unlock()
	if !ok {
		s.n.Add(1)
	}
	s.gen.Add(1)
	return nil
}

func (s *memStore) setExpire(key string, secs int64) error {
	now := nowMs()
	sh := s.shard(key)
	sh.mu.Lock()
	if it, ok := sh.m[key]; ok && it.live(now) {
		it.exp = 0
		if secs > 0 {
			it.exp = now + secs*1000
		}
		sh.m[key] = it
	}
	sh.mu.Unlock()
	s.gen.Add(1)
	return nil
}

func (s *memStore) add(key string, delta int64) (int64, bool, error) {
	now := nowMs()
	sh := s.shard(key)
	sh.mu.Lock()
	it, ok := sh.m[key]
	live := ok && it.live(now)
	switch {
	case live && it.str:
		sh.mu.Unlock()
		return 0, false, nil
	case live:
		it.n += delta
		if s.t.updateExpire {
			it.exp = s.t.expiryFor(it, false, 0, now)
		}
	case !s.t.hasInit:
		sh.mu.Unlock()
		return 0, false, nil
	default: // missing or expired: start again from initval
		it = item{n: s.t.initVal + delta, exp: s.t.expiryFor(item{}, false, 0, now)}
	}
	sh.m[key] = it
	sh.mu.Unlock()
	if !ok {
		s.n.Add(1)
	}
	s.gen.Add(1)
	return it.n, true, nil
}

func (s *memStore) del(key string) error {
	sh := s.shard(key)
	sh.mu.Lock()
	_, ok := sh.m[key]
	delete(sh.m, key)
	sh.mu.Unlock()
	if ok {
		s.n.Add(-1)
		s.gen.Add(1)
	}
	return nil
}

// walk gathers each shard's items under its lock and calls fn without it, so fn may use the table.
func (s *memStore) walk(fn func(key string, it item) bool) error {
	type kv struct {
		k  string
		it item
	}
	var batch []kv
	now := nowMs()
	for i := range s.shards {
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.RLock()
		for k, it := range sh.m {
			if it.live(now) {
				batch = append(batch, kv{k, it})
			}
		}
		sh.mu.RUnlock()
		for _, e := range batch {
			if !fn(e.k, e.it) {
				return nil
			}
		}
	}
	return nil
}

func (s *memStore) deleteIf(fn func(key string, it item) bool) (int, error) {
	now := nowMs()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, it := range sh.m {
			if it.live(now) && fn(k, it) {
				delete(sh.m, k)
				n++
			}
		}
		sh.mu.Unlock()
	}
	if n > 0 {
		s.n.Add(int64(-n))
		s.gen.Add(1)
	}
	return n, nil
}

func (s *memStore) reset() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.n.Add(int64(-len(sh.m)))
		clear(sh.m)
		sh.mu.Unlock()
	}
	s.gen.Add(1)
	return nil
}

func (s *memStore) count() int { return int(s.n.Load()) }

func (s *memStore) sweep(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		n := 0
		sh.mu.Lock()
		for k, it := range sh.m {
			if !it.live(now) {
				delete(sh.m, k)
				n++
			}
		}
		sh.mu.Unlock()
		if n > 0 {
			s.n.Add(int64(-n))
			s.gen.Add(1)
		}
	}
}

func (s *memStore) close() {}

// load puts an item from the snapshot (already checked live) into the store.
func (s *memStore) load(key string, it item) {
	sh := s.shard(key)
	sh.mu.Lock()
	if _, ok := sh.m[key]; !ok {
		s.n.Add(1)
	}
	sh.m[key] = it
	sh.mu.Unlock()
}

// replace swaps in the items of fresh (htable.reload), shard by shard.
func (s *memStore) replace(fresh *memStore) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.n.Add(int64(len(fresh.shards[i].m) - len(sh.m)))
		sh.m = fresh.shards[i].m
		sh.mu.Unlock()
	}
	s.gen.Add(1)
}
