package tm

import (
	"hash/maphash"
	"sync"
)

const shards = 64

// table is a map sharded by key hash, so workers and timers touching different transactions rarely meet
// on a lock.
type table[V any] struct {
	seed   maphash.Seed
	shards [shards]struct {
		sync.Mutex
		m map[string]V
	}
}

func (t *table[V]) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = map[string]V{}
	}
}

func (t *table[V]) shard(k string) int { return int(maphash.String(t.seed, k) % shards) }

func (t *table[V]) get(k string) (V, bool) {
	s := &t.shards[t.shard(k)]
	s.Lock()
	v, ok := s.m[k]
	s.Unlock()
	return v, ok
}

// getOrPut returns the value under k, or stores v and returns it with stored=true.
func (t *table[V]) getOrPut(k string, v V) (V, bool) {
	s := &t.shards[t.shard(k)]
	s.Lock()
	defer s.Unlock()
	if old, ok := s.m[k]; ok {
		return old, false
	}
	s.m[k] = v
	return v, true
}

func (t *table[V]) put(k string, v V) {
	s := &t.shards[t.shard(k)]
	s.Lock()
	s.m[k] = v
	s.Unlock()
}

func (t *table[V]) del(k string) {
	s := &t.shards[t.shard(k)]
	s.Lock()
	delete(s.m, k)
	s.Unlock()
}

func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}
