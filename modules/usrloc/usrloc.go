// Package usrloc keeps the location table (Kamailio's usrloc): the contacts registered for each AOR, in
// memory (with a snapshot file, so a restart keeps them) or in Redis (shared by several siplua nodes).
// The registrar and nathelper modules use it through Store; scripts reach it through KSR.registrar.*.
package usrloc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "usrloc", New: func() engine.Instance { return New() }})
}

// Binding is one registered contact of an AOR (Kamailio's ucontact). Strings are kept as received so the
// registrar can give them back on the wire unchanged.
type Binding struct {
	AOR       string // the address of record, as the registrar canonicalised it (user@domain, or user)
	Contact   string // the Contact URI, without the header parameters (expires, q …)
	Received  string // "sip:IP:PORT;transport=T" the request came from, when NAT was fixed ("" = none)
	Path      string // the Path header values, in order, comma-separated (RFC 3327); the route set on lookup
	Socket    string // the local socket it registered on, as engine.Listener.String(): "udp:127.0.0.1:5060"
	CallID    string
	UserAgent string
	Instance  string // +sip.instance (RFC 5626), without the quotes
	Expires   int64  // absolute expiry, Unix seconds: the binding is gone when now >= Expires
	Modified  int64  // last update, Unix seconds
	CSeq      uint32
	Q         int16  // q × 1000; -1 = none given (sorts as 1.0)
	RegID     int32  // reg-id (RFC 5626), 0 = none
	Flags     uint32 // usrloc flags
	CFlags    uint64 // branch flags saved with the contact (e.g. the NAT flag), restored on lookup
	Methods   uint32 // allowed methods as a bit mask (registrar's table); 0 = not known: every method
}

// Live reports whether the binding has not expired at Unix time now.
func (b *Binding) Live(now int64) bool { return now < b.Expires }

// Store is a location table backend. Every method is safe for concurrent use. Calls that reach a remote
// server (Redis) are bounded by the backend's timeout and return an error rather than wait longer.
type Store interface {
	// Lookup returns the live bindings of aor in table (nil when none). The caller must not modify them.
	Lookup(table, aor string) ([]Binding, error)
	// Update replaces the bindings of aor by what fn returns given the live ones, atomically with respect
	// to other updates of the same AOR (on every node sharing the store). fn may run more than once (an
	// optimistic retry) and must have no side effects; an error from fn is returned as is and nothing
	// changes. Returning no bindings removes the AOR. The store may keep the returned slice itself (the
	// memory backend keeps the copy it gave fn when fn returns it): nobody may change it afterwards.
	Update(table, aor string, fn func(cur []Binding) ([]Binding, error)) error
	// Delete removes one contact of aor, or every contact when contact is "". It reports whether anything
	// was removed.
	Delete(table, aor, contact string) (bool, error)
	// Range calls fn for every live binding of table ("" = every table) until fn returns false. It is for
	// dumps and keepalives, never for the routing path.
	Range(table string, fn func(table string, b *Binding) bool) error
	// Counts returns the AORs and contacts stored (for gauges; may be approximate for Redis).
	Counts() (aors, contacts int)
	// Close flushes what must be kept (the snapshot) and releases the backend.
	Close() error
}

// CopiesStrings is implemented by a Store that keeps none of the strings it is given: Update copies those
// of the bindings it stores (and the AOR), and no method keeps its arguments. A caller may then pass
// strings that are views of a buffer it reuses afterwards (the registrar passes views of the REGISTER).
type CopiesStrings interface {
	Store
	CopiesStrings()
}

// ErrUnavailable is wrapped by backend errors when the backing server cannot be reached.
var ErrUnavailable = errors.New("location store unavailable")

// Usrloc holds the module parameters and, once started, the store.
type Usrloc struct {
	// Backend is "memory" (default) or "redis".
	Backend string `toml:"backend"`
	// RedisURL is the Redis server of the redis backend: redis://[user:pass@]host:port[/db].
	RedisURL string `toml:"redis_url"`
	// RedisPrefix starts every key the redis backend writes.
	RedisPrefix string `toml:"redis_prefix"`
	// RedisTimeout bounds every Redis call, in milliseconds.
	RedisTimeout int `toml:"redis_timeout"`
	// TimerInterval is how often expired bindings are removed, in seconds (Kamailio's timer_interval).
	TimerInterval int `toml:"timer_interval"`
	// SnapshotFile is where the memory backend keeps its bindings across restarts, relative to the
	// configuration file's directory (the state directory for the embedded default configuration, see
	// snapshotPath); "" = no snapshot.
	SnapshotFile string `toml:"snapshot_file"`
	// SnapshotInterval is how often the snapshot is written, in seconds (and at shutdown).
	SnapshotInterval int `toml:"snapshot_interval"`
	// NatBflag is the branch flag (0..63) that marks a contact as behind NAT, saved in Binding.CFlags by
	// the registrar (Kamailio's nat_bflag); nathelper pings the contacts that have it. -1 = none.
	NatBflag int `toml:"nat_bflag"`

	log   *slog.Logger
	store Store
}

// New returns an instance with the defaults.
func New() *Usrloc {
	return &Usrloc{Backend: "memory", RedisURL: "redis://127.0.0.1:6379/0", RedisPrefix: "siplua:ul:",
		RedisTimeout: 50, TimerInterval: 60, SnapshotFile: DefaultSnapshotFile, SnapshotInterval: 30, NatBflag: -1}
}

// Validate checks the parameters.
func (u *Usrloc) Validate() error {
	switch u.Backend {
	case "memory", "redis":
	default:
		return fmt.Errorf("backend: expected \"memory\" or \"redis\", got %q", u.Backend)
	}
	if u.Backend == "redis" {
		if _, err := url.Parse(u.RedisURL); err != nil || u.RedisURL == "" {
			return fmt.Errorf("redis_url: expected redis://host:port[/db], got %q", u.RedisURL)
		}
	}
	if u.RedisTimeout < 1 || u.RedisTimeout > 60000 {
		return fmt.Errorf("redis_timeout: expected 1..60000 (milliseconds), got %d", u.RedisTimeout)
	}
	if u.TimerInterval < 1 || u.TimerInterval > 3600 {
		return fmt.Errorf("timer_interval: expected 1..3600 (seconds), got %d", u.TimerInterval)
	}
	if u.SnapshotInterval < 1 || u.SnapshotInterval > 86400 {
		return fmt.Errorf("snapshot_interval: expected 1..86400 (seconds), got %d", u.SnapshotInterval)
	}
	if u.NatBflag < -1 || u.NatBflag > 63 {
		return fmt.Errorf("nat_bflag: expected -1 (none) or 0..63, got %d", u.NatBflag)
	}
	return nil
}

// NATed reports whether a binding carries the NAT branch flag.
func (u *Usrloc) NATed(b *Binding) bool {
	return u.NatBflag >= 0 && b.CFlags&(1<<uint(u.NatBflag)) != 0
}

// Store returns the location store (nil before Start).
func (u *Usrloc) Store() Store { return u.store }

// Exports: usrloc has no KSR functions of its own (Kamailio's are in registrar); it is reached from Go.
func (u *Usrloc) Exports() []engine.Export { return nil }

// Start opens the backend.
func (u *Usrloc) Start(env *engine.Env) error {
	u.log = env.Log
	var err error
	switch u.Backend {
	case "redis":
		u.store, err = newRedisStore(u, env)
	default:
		u.store, err = newMemoryStore(u, env)
	}
	if err != nil {
		return fmt.Errorf("usrloc %s backend: %w", u.Backend, err)
	}
	return nil
}

// Stop closes the backend (the memory backend writes its snapshot).
func (u *Usrloc) Stop() error {
	if u.store == nil {
		return nil
	}
	return u.store.Close()
}

// Gauges: AORs and contacts in the location table.
func (u *Usrloc) Gauges() []engine.Gauge {
	count := func(contacts bool) func() float64 {
		return func() float64 {
			if u.store == nil {
				return 0
			}
			a, c := u.store.Counts()
			if contacts {
				return float64(c)
			}
			return float64(a)
		}
	}
	return []engine.Gauge{
		{Name: "usrloc_aors", Help: "AORs with at least one registered contact.", Value: count(false)},
		{Name: "usrloc_contacts", Help: "Registered contacts.", Value: count(true)},
	}
}

// FromEngine returns the loaded usrloc module, for the modules that need the location table.
func FromEngine(e *engine.Engine) (*Usrloc, error) {
	inst, ok := e.Module("usrloc")
	if !ok {
		return nil, errors.New("module usrloc is not loaded: add a [modules.usrloc] table")
	}
	u, ok := inst.(*Usrloc)
	if !ok {
		return nil, fmt.Errorf("module usrloc is %T, not *usrloc.Usrloc", inst)
	}
	return u, nil
}
