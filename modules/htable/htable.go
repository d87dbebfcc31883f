// Package htable is Kamailio's htable module: named hash tables shared by every worker, for counters,
// bans, caches and flags between messages. Items are strings or integers with an optional expiry. Unlike
// Kamailio's (lost on restart, kamailio#260), a siplua table survives a restart: the memory backend writes
// a snapshot file, the redis backend keeps its items in Redis (shared by several siplua nodes).
package htable

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/internal/statefile"
)

func init() {
	engine.Register(engine.Module{Name: "htable", New: func() engine.Instance { return New() }})
}

// TableConf is one [modules.htable.tables.NAME] table (Kamailio's htable modparam "NAME=>size=…;…").
type TableConf struct {
	// Size is Kamailio's size: the table has 2^size slots (here: lock shards). 0 = the default, 4.
	Size int `toml:"size"`
	// AutoExpire is the lifetime of an item in seconds, counted from its last update (see UpdateExpire);
	// 0 = items never expire.
	AutoExpire int `toml:"autoexpire"`
	// InitVal, when set, makes the table an integer table: a missing item reads as InitVal and sht_inc of
	// a missing item starts from it (Kamailio's initval).
	InitVal *int64 `toml:"initval"`
	// UpdateExpire: an update of an item restarts its autoexpire lifetime (Kamailio's updateexpire,
	// default true); false keeps the lifetime counted from the item's creation.
	UpdateExpire *bool `toml:"updateexpire"`
	// Backend is "memory" (default; kept across restarts in snapshot_file) or "redis".
	Backend string `toml:"backend"`
	// RedisURL is the server of the redis backend: redis://[user:pass@]host:port[/db].
	RedisURL string `toml:"redis_url"`
	// RedisPrefix starts every key of this table in Redis; the item key is appended after "NAME:".
	RedisPrefix string `toml:"redis_prefix"`
}

// Htable holds the module parameters and, once started, the tables.
type Htable struct {
	Tables map[string]*TableConf `toml:"tables"`
	// SnapshotFile keeps the memory tables across restarts, relative to the configuration file's
	// directory (the state directory for the embedded configuration); "" = no snapshot.
	SnapshotFile string `toml:"snapshot_file"`
	// SnapshotInterval is how often the snapshot is written when something changed, in seconds (and at
	// shutdown).
	SnapshotInterval int `toml:"snapshot_interval"`
	// TimerInterval is how often expired items are removed, in seconds (Kamailio's timer_interval). Reads
	// never return an expired item in between.
	TimerInterval int `toml:"timer_interval"`
	// RedisTimeout bounds every Redis call, in milliseconds: routes have a 100 ms budget.
	RedisTimeout int `toml:"redis_timeout"`
	// LockTimeout bounds how long sht_lock waits for a lock held by another worker, in milliseconds.
	LockTimeout int `toml:"lock_timeout"`
	// LockLease is how long a lock taken with sht_lock is held at most, in milliseconds: a script that
	// never calls sht_unlock cannot block the key for ever.
	LockLease int `toml:"lock_lease"`

	log      *slog.Logger
	tables   map[string]*table
	names    []string
	snapPath string
	snapMu   sync.Mutex
	savedGen uint64
	// gen counts changes to the memory tables: the snapshot is written only when it moved.
	gen      atomic.Uint64
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Defaults (Kamailio's where it has one).
const (
	defaultSize          = 4
	DefaultSnapshotFile  = "htable.snapshot"
	maxIterators         = 4 // Kamailio's HT_ITERATOR_SIZE
	noIntVal             = -255
	defaultRedisPrefix   = "siplua:ht:"
	defaultRedisURL      = "redis://127.0.0.1:6379/0"
	defaultTimerInterval = 20
)

// New returns an instance with the defaults.
func New() *Htable {
	return &Htable{SnapshotFile: DefaultSnapshotFile, SnapshotInterval: 30, TimerInterval: defaultTimerInterval,
		RedisTimeout: 50, LockTimeout: 50, LockLease: 1000}
}

var tableName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks the parameters and fills the per-table defaults.
func (h *Htable) Validate() error {
	if h.SnapshotInterval < 1 || h.SnapshotInterval > 86400 {
		return fmt.Errorf("snapshot_interval: expected 1..86400 (seconds), got %d", h.SnapshotInterval)
	}
	if h.TimerInterval < 1 || h.TimerInterval > 3600 {
		return fmt.Errorf("timer_interval: expected 1..3600 (seconds), got %d", h.TimerInterval)
	}
	if h.RedisTimeout < 1 || h.RedisTimeout > 60000 {
		return fmt.Errorf("redis_timeout: expected 1..60000 (milliseconds), got %d", h.RedisTimeout)
	}
	if h.LockTimeout < 0 || h.LockTimeout > 10000 {
		return fmt.Errorf("lock_timeout: expected 0..10000 (milliseconds), got %d", h.LockTimeout)
	}
	if h.LockLease < 1 || h.LockLease > 600000 {
		return fmt.Errorf("lock_lease: expected 1..600000 (milliseconds), got %d", h.LockLease)
	}
	for name, c := range h.Tables {
		if !tableName.MatchString(name) {
			return fmt.Errorf("tables.%s: expected a name of letters, digits, '_', '.', '-' (at most 64)", name)
		}
		if c == nil {
			return fmt.Errorf("tables.%s: expected a table", name)
		}
		if c.Size == 0 {
			c.Size = defaultSize
		}
		if c.Size < 1 || c.Size > 16 {
			return fmt.Errorf("tables.%s.size: expected 1..16 (2^size slots), got %d", name, c.Size)
		}
		if c.AutoExpire < 0 || c.AutoExpire > 100*365*86400 {
			return fmt.Errorf("tables.%s.autoexpire: expected 0 (never) or seconds, got %d", name, c.AutoExpire)
		}
		if c.UpdateExpire == nil {
			t := true
			c.UpdateExpire = &t
		}
		switch c.Backend {
		case "":
			c.Backend = "memory"
		case "memory", "redis":
		default:
			return fmt.Errorf("tables.%s.backend: expected \"memory\" or \"redis\", got %q", name, c.Backend)
		}
		if c.Backend == "redis" {
			if c.RedisURL == "" {
				c.RedisURL = defaultRedisURL
			}
			if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
				return fmt.Errorf("tables.%s.redis_url: expected redis://host:port[/db], got %q", name, c.RedisURL)
			}
			if c.RedisPrefix == "" {
				c.RedisPrefix = defaultRedisPrefix
			}
		} else if c.RedisURL != "" || c.RedisPrefix != "" {
			return fmt.Errorf("tables.%s: redis_url and redis_prefix need backend = \"redis\"", name)
		}
	}
	return nil
}

// Start opens the tables: memory tables are loaded from the snapshot, redis tables connect.
func (h *Htable) Start(env *engine.Env) error {
	h.log = env.Log
	if h.log == nil {
		h.log = slog.Default().With("module", "htable")
	}
	if err := h.Validate(); err != nil { // fills per-table defaults when Start is called directly
		return err
	}
	h.tables = map[string]*table{}
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	var cfg *engine.Config
	if env.Engine != nil {
		cfg = env.Engine.Config()
	}
	hasMemory := false
	for name, c := range h.Tables {
		t := &table{name: name, conf: c, slots: 1 << c.Size, expireMs: int64(c.AutoExpire) * 1000,
			updateExpire: *c.UpdateExpire}
		if c.InitVal != nil {
			t.hasInit, t.initVal = true, *c.InitVal
		}
		t.locks = make([]slotLock, t.slots)
		switch c.Backend {
		case "redis":
			rs, err := newRedisStore(t, c, time.Duration(h.RedisTimeout)*time.Millisecond, h.log)
			if err != nil {
				h.closeStores()
				return fmt.Errorf("htable table %s: %w", name, err)
			}
			t.store = rs
		default:
			t.store = newMemStore(t, &h.gen)
			hasMemory = true
		}
		h.tables[name] = t
		h.names = append(h.names, name)
	}
	sort.Strings(h.names)
	if hasMemory && h.SnapshotFile != "" {
		p, err := statefile.Resolve(h.SnapshotFile, cfg)
		if err != nil {
			h.closeStores()
			return fmt.Errorf("htable snapshot_file: %w", err)
		}
		h.snapPath = p
		h.loadSnapshot()
		if err := statefile.Probe(p); err != nil {
			h.log.Warn("htable snapshot cannot be written: tables will not survive a restart", "file", p, "err", err)
		}
	}
	go h.loop()
	return nil
}

// Stop writes the snapshot and closes the Redis connections.
func (h *Htable) Stop() error {
	if h.stop == nil {
		return nil
	}
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	err := h.saveSnapshot()
	h.closeStores()
	return err
}

func (h *Htable) closeStores() {
	for _, t := range h.tables {
		if t.store != nil {
			t.store.close()
		}
	}
}

// loop removes expired items and writes the snapshot at their intervals.
func (h *Htable) loop() {
	defer close(h.done)
	sweep := time.NewTicker(time.Duration(h.TimerInterval) * time.Second)
	defer sweep.Stop()
	snap := time.NewTicker(time.Duration(h.SnapshotInterval) * time.Second)
	defer snap.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-sweep.C:
			now := nowMs()
			for _, name := range h.names {
				h.tables[name].store.sweep(now)
			}
		case <-snap.C:
			if err := h.saveSnapshot(); err != nil {
				h.log.Error("htable snapshot not written", "err", err)
			}
		}
	}
}

// Gauges: items per table, as one gauge per table (htable_items_NAME).
func (h *Htable) Gauges() []engine.Gauge {
	names := make([]string, 0, len(h.Tables))
	for n := range h.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]engine.Gauge, 0, len(names))
	for _, n := range names {
		out = append(out, engine.Gauge{Name: "htable_items_" + gaugeName(n),
			Help: "Items in htable table " + n + " (redis: as last counted).",
			Value: func() float64 {
				if t := h.tables[n]; t != nil {
					return float64(t.store.count())
				}
				return 0
			}})
	}
	return out
}

func gaugeName(n string) string {
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// FromEngine returns the loaded htable module (for modules that share its tables, like Kamailio's
// htable API).
func FromEngine(e *engine.Engine) (*Htable, error) {
	inst, ok := e.Module("htable")
	if !ok {
		return nil, errors.New("module htable is not loaded: add a [modules.htable] table")
	}
	h, ok := inst.(*Htable)
	if !ok {
		return nil, fmt.Errorf("module htable is %T, not *htable.Htable", inst)
	}
	return h, nil
}

func nowMs() int64 { return time.Now().UnixMilli() }
