package usrloc

import (
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/siplua/siplua/engine"
)

// DefaultTable is the location table used when a caller names none (Kamailio's "location").
const DefaultTable = "location"

// memShards spreads the AORs over this many independently locked maps, so that registrations of
// different users rarely wait for each other. A power of two: the shard is picked with a mask.
const memShards = 256

// memStore is the in-memory backend. Each shard maps table → AOR → bindings. A stored slice is never
// modified after it is stored (copy on write): Lookup hands it out without copying, and readers keep a
// consistent view after the lock is released.
type memStore struct {
	seed   maphash.Seed
	shards [memShards]memShard
	now    func() int64 // Unix seconds; a field so tests can move time
	log    *slog.Logger

	aors, contacts atomic.Int64  // what is stored (expired bindings count until the timer removes them)
	gen            atomic.Uint64 // bumped on every change: the snapshot writer skips an unchanged table

	snapPath     string
	snapInterval time.Duration
	timer        time.Duration
	snapMu       sync.Mutex // one snapshot write at a time (timer and Close)
	savedGen     uint64     // gen of the last snapshot written; under snapMu

	interned  sync.Map // socket name → the store's copy
	nInterned atomic.Int64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type memShard struct {
	mu     sync.RWMutex
	tables map[string]map[string][]Binding
	// loc is tables[DefaultTable] (nil while that table has no AOR in the shard): nearly every call is for
	// it, and this saves hashing its name. Written only with mu held for writing, as tables.
	loc map[string][]Binding
}

// table returns tables[name]; the caller holds mu.
func (sh *memShard) table(name string) map[string][]Binding {
	if name == DefaultTable {
		return sh.loc
	}
	return sh.tables[name]
}

// memOptions configure a memory store; newMemoryStore fills them from the module parameters.
type memOptions struct {
	Timer            time.Duration // expired bindings are removed this often; 0 = no timer goroutine
	SnapshotFile     string        // "" = no snapshot
	SnapshotInterval time.Duration // 0 = only at Close
	Now              func() int64  // nil = the wall clock
	Log              *slog.Logger
}

// newMemoryStore opens the in-memory backend with the module parameters.
func newMemoryStore(u *Usrloc, env *engine.Env) (Store, error) {
	var log *slog.Logger
	if env != nil {
		log = env.Log
	}
	var cfg *engine.Config
	if env != nil && env.Engine != nil {
		cfg = env.Engine.Config()
	}
	path, err := snapshotPath(u.SnapshotFile, cfg)
	if err != nil {
		if log == nil {
			log = slog.Default().With("module", "usrloc")
		}
		log.Warn("usrloc snapshot disabled", "err", err)
		path = ""
	}
	return openMemStore(memOptions{
		Timer:            time.Duration(u.TimerInterval) * time.Second,
		SnapshotFile:     path,
		SnapshotInterval: time.Duration(u.SnapshotInterval) * time.Second,
		Log:              log,
	})
}

// openMemStore creates the store, loads the snapshot if there is one and starts the timer goroutine.
func openMemStore(o memOptions) (*memStore, error) {
	s := &memStore{seed: maphash.MakeSeed(), now: o.Now, log: o.Log, snapPath: o.SnapshotFile,
		snapInterval: o.SnapshotInterval, timer: o.Timer, stop: make(chan struct{}), done: make(chan struct{})}
	if s.now == nil {
		s.now = func() int64 { return time.Now().Unix() }
	}
	if s.log == nil { // the engine's logger has the module attribute already
		s.log = slog.Default().With("module", "usrloc")
	}
	for i := range s.shards {
		s.shards[i].tables = map[string]map[string][]Binding{}
	}
	if s.snapPath != "" {
		s.loadSnapshot()
		s.probeSnapshotDir()
	}
	if s.timer > 0 || (s.snapPath != "" && s.snapInterval > 0) {
		go s.run()
	} else {
		close(s.done)
	}
	return s, nil
}

// CopiesStrings: the memory backend keeps copies (store packs the strings of every binding it stores,
// or reuses the stored ones, and clones the AOR of a new key).
func (s *memStore) CopiesStrings() {}

func (s *memStore) shard(aor string) *memShard {
	return &s.shards[maphash.String(s.seed, aor)&(memShards-1)]
}

func tableName(t string) string {
	if t == "" {
		return DefaultTable
	}
	return t
}

// live returns the bindings of bs that have not expired at now: bs itself when all are live (the usual
// case, no allocation), else a new slice; bs is never changed in place (the memory backend's stored
// slices and the Redis backend's cached ones are shared with other callers).
func live(bs []Binding, now int64) []Binding {
	n := 0
	for i := range bs {
		if bs[i].Live(now) {
			n++
		}
	}
	if n == len(bs) {
		return bs
	}
	if n == 0 {
		return nil
	}
	out := make([]Binding, 0, n)
	for i := range bs {
		if bs[i].Live(now) {
			out = append(out, bs[i])
		}
	}
	return out
}

// Lookup returns the live bindings of aor; the slice is shared and must not be modified.
func (s *memStore) Lookup(table, aor string) ([]Binding, error) {
	sh := s.shard(aor)
	sh.mu.RLock()
	bs := sh.table(tableName(table))[aor]
	sh.mu.RUnlock()
	return live(bs, s.now()), nil
}

// Update runs fn under the shard's write lock, so it is atomic with respect to every other change of aor.
// fn gets its own copy of the live bindings: it may modify and return it (then that copy is stored).
func (s *memStore) Update(table, aor string, fn func(cur []Binding) ([]Binding, error)) error {
	table = tableName(table)
	sh := s.shard(aor)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.table(table)
	old, had := t[aor]
	var cur []Binding
	if l := live(old, s.now()); len(l) > 0 {
		cur = make([]Binding, len(l))
		copy(cur, l)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	// fn usually changes cur in place and returns it (a refresh): cur is this call's own exactly sized
	// copy, nobody else has it, so the store keeps it rather than copy it again.
	owned := len(next) > 0 && len(next) == cap(next) && len(cur) == len(next) && unsafe.SliceData(next) == unsafe.SliceData(cur)
	s.storeOwned(sh, table, t, aor, old, had, next, owned)
	return nil
}

// store replaces the bindings of aor by next (nil or empty removes the AOR) and keeps the counters. The
// caller holds sh.mu for writing; t is sh.tables[table] (nil when the table has no AOR yet).
func (s *memStore) store(sh *memShard, table string, t map[string][]Binding, aor string, old []Binding, had bool, next []Binding) {
	s.storeOwned(sh, table, t, aor, old, had, next, false)
}

// storeOwned is store; owned means next is the caller's private exactly sized slice, kept as is (its
// bindings' strings are still made the store's own) instead of copied.
func (s *memStore) storeOwned(sh *memShard, table string, t map[string][]Binding, aor string, old []Binding, had bool, next []Binding, owned bool) {
	if len(next) == 0 {
		if had {
			delete(t, aor)
			if len(t) == 0 {
				delete(sh.tables, table)
				if table == DefaultTable {
					sh.loc = nil
				}
			}
			s.aors.Add(-1)
			s.contacts.Add(-int64(len(old)))
			s.gen.Add(1)
		}
		return
	}
	if t == nil {
		t = map[string][]Binding{}
		sh.tables[table] = t
		if table == DefaultTable {
			sh.loc = t
		}
	}
	// The stored slice is exactly sized (no spare capacity kept per AOR) and every binding shares the map
	// key's AOR string: one copy of it per AOR, however many contacts. The other strings are copied into
	// one allocation per binding, so that a binding never keeps the received message's buffer alive.
	var key string
	if had && len(old) > 0 {
		key = old[0].AOR
	} else {
		key = strings.Clone(aor)
	}
	stored := next
	if !owned {
		stored = make([]Binding, len(next))
		copy(stored, next)
	}
	for i := range stored {
		if !reuseStrings(&stored[i], old) {
			s.pack(&stored[i], old)
		}
		stored[i].AOR = key
	}
	t[key] = stored
	if !had {
		s.aors.Add(1)
	}
	s.contacts.Add(int64(len(stored) - len(old)))
	s.gen.Add(1)
}

// Delete removes one contact of aor (exact match of the Contact URI), or all of them when contact is "".
func (s *memStore) Delete(table, aor, contact string) (bool, error) {
	table = tableName(table)
	sh := s.shard(aor)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.table(table)
	old, had := t[aor]
	if !had {
		return false, nil
	}
	if contact == "" {
		s.store(sh, table, t, aor, old, true, nil)
		return true, nil
	}
	next := make([]Binding, 0, len(old))
	for _, b := range old {
		if b.Contact != contact {
			next = append(next, b)
		}
	}
	if len(next) == len(old) {
		return false, nil
	}
	s.store(sh, table, t, aor, old, true, next)
	return true, nil
}

// Range calls fn for every live binding. The lock of a shard is held only while its slices are gathered
// (they are immutable), so fn may call Update or Delete.
func (s *memStore) Range(table string, fn func(table string, b *Binding) bool) error {
	var batch []tableBindings
	now := s.now()
	for i := range s.shards {
		batch = s.shards[i].gather(batch[:0], table)
		for _, e := range batch {
			for j := range e.bs {
				if !e.bs[j].Live(now) {
					continue
				}
				b := e.bs[j] // a copy: fn may keep or modify it without touching the stored one
				if !fn(e.table, &b) {
					return nil
				}
			}
		}
	}
	return nil
}

// tableBindings is one AOR's stored bindings and the table they are in.
type tableBindings struct {
	table string
	bs    []Binding
}

// gather appends the stored binding slices of the shard's AORs in table ("" for every table) to batch,
// holding the shard's read lock only while it copies the slice headers: stored slices are immutable,
// so the caller may read them after the lock is released (and may call Update or Delete meanwhile).
func (sh *memShard) gather(batch []tableBindings, table string) []tableBindings {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for tn, t := range sh.tables {
		if table != "" && tn != table {
			continue
		}
		for _, bs := range t {
			batch = append(batch, tableBindings{tn, bs})
		}
	}
	return batch
}

// Counts returns the stored AORs and contacts, kept by every change (O(1)). Expired bindings count until
// the timer removes them, at most timer_interval after they expire.
func (s *memStore) Counts() (aors, contacts int) {
	return int(s.aors.Load()), int(s.contacts.Load())
}

// expire removes the expired bindings of every shard; it returns how many were removed.
func (s *memStore) expire() int {
	now := s.now()
	removed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for tn, t := range sh.tables {
			for aor, bs := range t {
				l := live(bs, now)
				if len(l) == len(bs) {
					continue
				}
				removed += len(bs) - len(l)
				s.store(sh, tn, t, aor, bs, true, l)
			}
		}
		sh.mu.Unlock()
	}
	return removed
}

// run is the store's one goroutine: the expiry timer and the periodic snapshot.
func (s *memStore) run() {
	defer close(s.done)
	var expC, snapC <-chan time.Time
	failing := false
	if s.timer > 0 {
		t := time.NewTicker(s.timer)
		defer t.Stop()
		expC = t.C
	}
	if s.snapPath != "" && s.snapInterval > 0 {
		t := time.NewTicker(s.snapInterval)
		defer t.Stop()
		snapC = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-expC:
			if n := s.expire(); n > 0 {
				s.log.Debug("expired bindings removed", "count", n)
			}
		case <-snapC:
			// A failing disk would log every interval: log the first failure and the recovery only.
			err := s.saveSnapshot()
			switch {
			case err != nil && !failing:
				s.log.Error("usrloc snapshot not written: locations written since the last snapshot will not survive a restart", "err", err)
			case err == nil && failing:
				s.log.Info("usrloc snapshot written again", "file", s.snapPath)
			}
			failing = err != nil
		}
	}
}

// Close stops the timer and writes the snapshot.
func (s *memStore) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		if s.snapPath != "" {
			s.closeErr = s.saveSnapshot()
		}
	})
	return s.closeErr
}

// reuseStrings points b's strings at those of the stored binding with the same contact when they are all
// equal: a re-REGISTER usually repeats Contact, Call-ID and User-Agent, and then needs no new copy.
func reuseStrings(b *Binding, old []Binding) bool {
	for i := range old {
		o := &old[i]
		if o.Contact != b.Contact {
			continue
		}
		if o.Received != b.Received || o.Path != b.Path || o.CallID != b.CallID || o.UserAgent != b.UserAgent ||
			o.Instance != b.Instance || o.Socket != b.Socket {
			return false
		}
		b.Contact, b.Received, b.Path, b.CallID, b.UserAgent, b.Instance, b.Socket =
			o.Contact, o.Received, o.Path, o.CallID, o.UserAgent, o.Instance, o.Socket
		return true
	}
	return false
}

// maxInterned bounds the socket names a store interns: they come from the listeners, so a handful.
const maxInterned = 256

// pack makes b's strings the store's own: the socket is interned (few distinct values), the others are
// copied into one new string and sliced from it.
func (s *memStore) pack(b *Binding, old []Binding) {
	b.Socket = s.internFrom(b.Socket, old)
	n := len(b.Contact) + len(b.Received) + len(b.Path) + len(b.CallID) + len(b.UserAgent) + len(b.Instance)
	if n == 0 {
		return
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range [...]string{b.Contact, b.Received, b.Path, b.CallID, b.UserAgent, b.Instance} {
		sb.WriteString(f)
	}
	all := sb.String()
	cut := func(f *string) {
		l := len(*f)
		if l == 0 {
			*f = ""
			return
		}
		*f, all = all[:l], all[l:]
	}
	cut(&b.Contact)
	cut(&b.Received)
	cut(&b.Path)
	cut(&b.CallID)
	cut(&b.UserAgent)
	cut(&b.Instance)
}

// internFrom is intern, taking the store's copy from old (the AOR's stored bindings) when one has it: a
// refresh comes in on the socket it registered on, and this saves the lookup in interned.
func (s *memStore) internFrom(v string, old []Binding) string {
	for i := range old {
		if old[i].Socket == v {
			return old[i].Socket
		}
	}
	return s.intern(v)
}

// intern returns the store's copy of a socket name.
func (s *memStore) intern(v string) string {
	if v == "" {
		return ""
	}
	if c, ok := s.interned.Load(v); ok {
		return c.(string)
	}
	if s.nInterned.Load() >= maxInterned {
		return strings.Clone(v)
	}
	c := strings.Clone(v)
	if act, loaded := s.interned.LoadOrStore(c, c); loaded {
		return act.(string)
	}
	s.nInterned.Add(1)
	return c
}
