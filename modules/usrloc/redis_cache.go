package usrloc

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The Redis backend's local cache: the decoded bindings of each AOR this node looked up, so that a Lookup
// costs no round trip (and no allocation) while Redis has not said the AOR changed. Redis says so through
// client tracking (RESP3 invalidation pushes, which rueidis hands to redisStore.onInvalidate); an entry is
// only ever filled from a read made with DoCache, the read that asks Redis to track the key for this
// connection, so every entry marked valid is one Redis will invalidate.
//
// An invalidated entry is not dropped: it stays as the last known value, served only while Redis cannot be
// reached (rueidis empties its own cache when the connection drops, so this copy is the one that survives).
const (
	cacheShards = 32
	// cacheMaxEntries bounds the cache (lookups of unknown AORs are cached too, as "no bindings", and a
	// flood of INVITEs to random users must not grow it without end); past it a random entry is evicted.
	cacheMaxEntries = 1 << 18
	// cacheMaxAge is a safety net: a valid entry older than this is read again even without invalidation.
	cacheMaxAge = 120
)

type cacheEntry struct {
	bindings []Binding // in stored order; may hold bindings that expired since (see minExp)
	minExp   int64     // smallest Expires of bindings, math.MaxInt64 when none: until then all are live
	ver      string    // the AOR's version token when read ("" = no such key)
	epoch    uint64    // localCache.epoch when read: an older epoch means tracking was lost since
	fetched  int64     // Unix seconds of the read
	valid    bool      // false once Redis invalidated the key: then only a stale copy for outages
	// bypass (Unix ns) follows a write of this node: until then, or until Redis's invalidation of the key
	// arrives, a lookup reads Redis without rueidis's cache, which may still hold the value from before
	// the write (the invalidation push can come just after the write's reply). A node reads its own
	// writes: a REGISTER answered 200 is routed by the next INVITE through the same node.
	bypass int64
	// tracked: a DoCache of the key completed and Redis has not invalidated it since, so rueidis's cache
	// may hold it (only then does a write of this node need the bypass).
	tracked bool
}

// fresh reports whether e can answer without asking Redis.
func (e *cacheEntry) fresh(epoch uint64, now int64) bool {
	return e.valid && e.epoch == epoch && now-e.fetched < cacheMaxAge
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*cacheEntry
}

type localCache struct {
	shards [cacheShards]cacheShard
	// gen changes on every invalidation. A read takes gen before asking Redis and fills its entry as
	// valid only if gen is the same afterwards: otherwise an invalidation may have passed while the answer
	// was on its way, and the entry is kept as a stale copy only.
	gen atomic.Uint64
	// epoch changes when every entry must be read again (the connection, and so its tracking, was lost;
	// or Redis said "invalidate everything" after a FLUSHDB).
	epoch atomic.Uint64
	seed  maphash.Seed
}

func newLocalCache() *localCache {
	c := &localCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	return c
}

func (c *localCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

// get returns a copy of key's entry. key is a byte slice so that the hot path builds it without allocating.
func (c *localCache) get(key []byte) (cacheEntry, bool) {
	sh := c.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[string(key)]
	var v cacheEntry
	if ok {
		v = *e
	}
	sh.mu.RUnlock()
	return v, ok
}

// put stores bindings read for key. A tracked read (DoCache) gives a valid entry if no invalidation came
// since gen0 was taken; an untracked one only a stale copy.
func (c *localCache) put(key []byte, bs []Binding, ver string, gen0, epoch0 uint64, now int64, tracked bool) {
	e := &cacheEntry{bindings: bs, minExp: minExpires(bs), ver: ver, epoch: epoch0, fetched: now}
	sh := c.shard(key)
	sh.mu.Lock()
	e.valid = tracked && c.gen.Load() == gen0
	e.tracked = tracked
	old, ok := sh.m[string(key)]
	if ok && !tracked {
		e.bypass, e.tracked = old.bypass, old.tracked
	}
	if !ok && len(sh.m) >= cacheMaxEntries/cacheShards {
		for k := range sh.m { // Go's map order is random enough for an eviction of last resort
			delete(sh.m, k)
			break
		}
	}
	if ok && !e.valid && len(bs) == 0 && old.minExp != math.MaxInt64 {
		// A raced read that found nothing does not replace a stale copy that has bindings: keep the
		// copy for outages; it is invalid anyway.
		sh.mu.Unlock()
		return
	}
	sh.m[string(key)] = e
	sh.mu.Unlock()
}

// trim replaces the bindings of key's entry by live (the expired ones removed), if the entry is still the
// one read at fetched.
func (c *localCache) trim(key []byte, fetched int64, ver string, live []Binding) {
	sh := c.shard(key)
	sh.mu.Lock()
	if e, ok := sh.m[string(key)]; ok && e.fetched == fetched && e.ver == ver {
		e.bindings, e.minExp = live, minExpires(live)
	}
	sh.mu.Unlock()
}

// wrote records a write of this node: bs (what was written) becomes the stale copy, and lookups bypass
// rueidis's cache until Redis's invalidation arrives, for a second at most.
func (c *localCache) wrote(key string, bs []Binding, ver string, now time.Time) {
	epoch := c.epoch.Load()
	e := &cacheEntry{bindings: bs, minExp: minExpires(bs), ver: ver, epoch: epoch, fetched: now.Unix()}
	sh := c.shard([]byte(key))
	sh.mu.Lock()
	c.gen.Add(1) // a tracked read in flight may have rueidis's old value: it must not become valid
	if old, ok := sh.m[key]; ok && old.tracked && old.epoch == epoch {
		e.tracked, e.bypass = true, now.Add(time.Second).UnixNano()
	}
	sh.m[key] = e
	sh.mu.Unlock()
}

// invalidate marks keys as changed in Redis; nil keys means every key.
func (c *localCache) invalidate(keys []string) {
	if keys == nil {
		c.gen.Add(1)
		c.epoch.Add(1)
		return
	}
	for _, k := range keys {
		sh := c.shard([]byte(k))
		sh.mu.Lock()
		c.gen.Add(1)
		if e, ok := sh.m[k]; ok {
			e.valid, e.bypass, e.tracked = false, 0, false
		}
		sh.mu.Unlock()
	}
}

// prune drops the entries that can no longer serve: no live binding, and either invalid or too old.
func (c *localCache) prune(now int64) (entries int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if !anyLive(e.bindings, now) && (!e.valid || now-e.fetched >= cacheMaxAge) {
				delete(sh.m, k)
			}
		}
		entries += len(sh.m)
		sh.mu.Unlock()
	}
	return entries
}

func minExpires(bs []Binding) int64 {
	m := int64(math.MaxInt64)
	for i := range bs {
		m = min(m, bs[i].Expires)
	}
	return m
}

func anyLive(bs []Binding, now int64) bool {
	for i := range bs {
		if bs[i].Live(now) {
			return true
		}
	}
	return false
}
