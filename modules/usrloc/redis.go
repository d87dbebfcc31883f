package usrloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/siplua/siplua/engine"
)

// The Redis backend: the location table shared by several siplua nodes.
//
// Layout: one hash per AOR, key <redis_prefix><table>:<aor>, one field per contact plus a version field
// (see redis_codec.go). The key's expiry (PEXPIREAT) is the latest expiry of its bindings, so Redis drops an
// AOR by itself; bindings that expire earlier are filtered on read and removed by the next update (Redis 7.0,
// what Debian ships, has no per-field expiry; HPEXPIREAT came with 7.4). Nothing on the routing path scans.
//
// Update is a compare-and-set: read the AOR and its version token, run fn, and write the new hash with a
// Lua script (EVALSHA) that applies it only if the version is still the one read; on conflict, read and
// run fn again. Lookup answers from a local cache of decoded bindings that Redis invalidates through client
// tracking (redis_cache.go): no round trip and no allocation while nothing changed.
//
// When Redis cannot be reached, the first failing call marks the store down: from then on Update and
// Delete fail at once with ErrUnavailable (the registrar answers 500), Lookup answers from the last value
// it knew, and a background probe (the store's one goroutine) PINGs until Redis answers again.

const (
	// updateAttempts bounds the optimistic retries of one Update, as redis_timeout does (each conflict
	// means another writer changed the same AOR between our read and our write).
	updateAttempts = 64
	// probeInterval is how often a down store asks Redis whether it is back.
	probeInterval = 250 * time.Millisecond
	// logEvery rate-limits the log lines of each kind of failure.
	logEvery = 10 * time.Second
	// scanCount is the COUNT hint of the SCANs of Range and of the counts.
	scanCount = 512
	// countSample: past this many AORs, the contacts are counted on the first ones and extrapolated.
	countSample = 20000
	// countsKey (after the prefix) holds "AORs contacts" as last counted; countLockKey elects the node
	// that counts. Neither has a ':' so neither is taken for a table's AOR.
	countsKey    = "#counts"
	countLockKey = "#countlock"
)

// casScript replaces the hash of KEYS[1] if its version is still ARGV[1]. ARGV[2] is the new version,
// ARGV[3] the key's expiry (Unix ms), ARGV[4..] the field/value pairs; with none, the AOR is removed.
// It returns 1 when written, 0 on a version conflict.
const casScript = `
local v = redis.call('HGET', KEYS[1], '#v')
if not v then v = '' end
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], '#v', ARGV[2], unpack(ARGV, 4))
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 1
`

type redisStore struct {
	log     *slog.Logger
	prefix  string
	timeout time.Duration
	every   time.Duration // timer_interval: counts and cache pruning
	opt     rueidis.ClientOption

	client atomic.Pointer[clientBox] // nil until the first connection succeeds
	cache  *localCache
	cas    *rueidis.Lua
	down   atomic.Bool

	aors, contacts atomic.Int64

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	limit logLimiter
}

type clientBox struct{ c rueidis.Client }

// newRedisStore opens the Redis backend. Redis being unreachable at start is not an error: the store
// starts down and connects when Redis comes (a node must not refuse to start because Redis restarts).
func newRedisStore(u *Usrloc, env *engine.Env) (Store, error) {
	opt, err := rueidis.ParseURL(u.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url %q: %w", u.RedisURL, err)
	}
	if len(opt.InitAddress) != 1 {
		return nil, fmt.Errorf("redis_url %q: expected one server, got %d", u.RedisURL, len(opt.InitAddress))
	}
	s := &redisStore{
		log:     env.Log,
		prefix:  u.RedisPrefix,
		timeout: time.Duration(u.RedisTimeout) * time.Millisecond,
		every:   time.Duration(u.TimerInterval) * time.Second,
		cache:   newLocalCache(),
		cas:     rueidis.NewLuaScript(casScript),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default().With("module", "usrloc")
	}
	opt.Dialer.Timeout = s.timeout
	// ConnWriteTimeout also drives rueidis's background PING, which finds a server that went silent
	// without closing the connection; calls themselves are bounded by their context (redis_timeout).
	opt.ConnWriteTimeout = max(3*s.timeout, time.Second)
	opt.CacheSizeEachConn = 32 << 20
	opt.OnInvalidations = s.onInvalidations
	// A failed call reports at once (the store goes down and the probe takes over) rather than retrying
	// until the deadline.
	opt.DisableRetry = true
	opt.BlockingPoolSize = 4
	s.opt = opt
	if err := s.connect(); err != nil {
		if errors.Is(err, rueidis.ErrNoCache) {
			return nil, fmt.Errorf("redis at %s: %w (the redis backend needs Redis 6 or later)", opt.InitAddress[0], err)
		}
		if _, refused := rueidis.IsRedisErr(err); refused {
			// Redis answered and said no (NOAUTH, WRONGPASS, a database that does not exist): a
			// configuration error, not an outage to wait out.
			return nil, fmt.Errorf("redis at %s (redis_url): %w", opt.InitAddress[0], err)
		}
		s.down.Store(true)
		s.log.Warn("redis unreachable at start; location updates fail until it answers",
			"addr", opt.InitAddress[0], "err", err)
	}
	go s.loop()
	return s, nil
}

func (s *redisStore) connect() error {
	c, err := rueidis.NewClient(s.opt)
	if err != nil {
		return err
	}
	s.client.Store(&clientBox{c})
	return nil
}

// conn returns the client, or nil while the store is down.
func (s *redisStore) conn() rueidis.Client {
	if s.down.Load() {
		return nil
	}
	if b := s.client.Load(); b != nil {
		return b.c
	}
	return nil
}

func (s *redisStore) key(table, aor string) string { return s.prefix + table + ":" + aor }

func (s *redisStore) appendKey(dst []byte, table, aor string) []byte {
	dst = append(dst, s.prefix...)
	dst = append(dst, table...)
	dst = append(dst, ':')
	return append(dst, aor...)
}

// onInvalidations runs on rueidis's connection reader for every tracking invalidation (nil: all keys,
// also sent when the connection closes). It must be quick.
func (s *redisStore) onInvalidations(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		s.cache.invalidate(nil)
		return
	}
	for i := range msgs {
		if k, err := msgs[i].ToString(); err == nil {
			s.cache.invalidate([]string{k})
		}
	}
}

// Lookup returns the live bindings of aor: from the local cache while Redis has not invalidated it, else
// read (and tracked) from Redis; while Redis is unreachable, from the last value known.
func (s *redisStore) Lookup(table, aor string) ([]Binding, error) {
	var buf [256]byte
	key := s.appendKey(buf[:0], table, aor)
	now := time.Now().Unix()
	e, cached := s.cache.get(key)
	if cached && e.fresh(s.cache.epoch.Load(), now) {
		if now < e.minExp {
			return e.bindings, nil
		}
		l := live(e.bindings, now)
		s.cache.trim(key, e.fetched, e.ver, l)
		return l, nil
	}
	c := s.conn()
	if c == nil {
		if cached {
			return live(e.bindings, now), nil
		}
		return nil, fmt.Errorf("usrloc redis: lookup %s: %w", string(key), ErrUnavailable)
	}
	how := readTracked
	if cached && e.bypass > time.Now().UnixNano() {
		how = readBypass
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	bs, _, err := s.read(ctx, c, key, aor, how)
	cancel()
	if err != nil {
		err = s.fail("read "+string(key), err)
		if cached && errors.Is(err, ErrUnavailable) {
			return live(e.bindings, now), nil
		}
		return nil, err
	}
	return live(bs, now), nil
}

type readMode int

const (
	readTracked readMode = iota // DoCache: Redis tracks the key for this connection; fills the local cache
	readBypass                  // a plain read after a write of this node; kept as a stale copy only
	readPlain                   // a plain read for Update; the cache is left alone
)

// read fetches the hash of key.
func (s *redisStore) read(ctx context.Context, c rueidis.Client, key []byte, aor string, how readMode) ([]Binding, string, error) {
	k := string(key)
	gen0, epoch0 := s.cache.gen.Load(), s.cache.epoch.Load()
	var res rueidis.RedisResult
	if how == readTracked {
		res = c.DoCache(ctx, c.B().Hgetall().Key(k).Cache(), cacheMaxAge*time.Second)
	} else {
		res = c.Do(ctx, c.B().Hgetall().Key(k).Build())
	}
	h, err := res.AsStrMap()
	if err != nil {
		return nil, "", err // the caller turns it into the error to return (fail)
	}
	bs, ver, bad := decodeHash(h, aor)
	if bad > 0 {
		s.logLimited("decode", "redis: bindings that cannot be decoded were skipped", "key", k, "fields", bad)
	}
	if how != readPlain {
		s.cache.put(key, bs, ver, gen0, epoch0, time.Now().Unix(), how == readTracked)
	}
	return bs, ver, nil
}

// Update runs the compare-and-set loop described at the top of the file.
func (s *redisStore) Update(table, aor string, fn func(cur []Binding) ([]Binding, error)) error {
	c := s.conn()
	key := s.key(table, aor)
	if c == nil {
		return fmt.Errorf("usrloc redis: update %s: %w", key, ErrUnavailable)
	}
	// One deadline for the whole Update, retries included.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	conflict := func() error {
		return fmt.Errorf("usrloc redis: update %s: conflicting updates from other writers until the deadline, giving up", key)
	}
	failed := func(what string, attempt int, err error) error {
		if attempt > 0 && ctx.Err() != nil {
			// Redis answered the earlier attempts: the deadline went on conflicts, not on an outage.
			return conflict()
		}
		return s.fail(what+" "+key, err)
	}
	for attempt := range updateAttempts {
		if attempt > 0 {
			// Conflicts come from writers of the same AOR at the same moment: a random pause, growing
			// with the attempts, lets them take turns.
			pause := time.Duration(rand.Int64N(int64(100*time.Microsecond) << min(attempt, 6)))
			if dl, _ := ctx.Deadline(); time.Until(dl) < pause {
				break
			}
			time.Sleep(pause)
		}
		var cur []Binding
		var ver string
		e, ok := s.cache.get([]byte(key))
		if attempt == 0 && ok && e.epoch == s.cache.epoch.Load() {
			// The cached copy saves the read: valid, or the value this node wrote last (a refresh
			// through the same node, the common case). If another writer came in between, the version
			// check fails and the next attempt reads from Redis.
			cur, ver = e.bindings, e.ver
		} else {
			var err error
			if cur, ver, err = s.read(ctx, c, []byte(key), aor, readPlain); err != nil {
				return failed("read", attempt, err)
			}
		}
		now := time.Now().Unix()
		// fn gets its own copy: the cached slice is shared with every Lookup.
		next, err := fn(slices.Clone(live(cur, now)))
		if err != nil {
			return err
		}
		written, err := s.write(ctx, c, key, aor, ver, next, now)
		if err != nil {
			return failed("write", attempt, err)
		}
		if written {
			return nil
		}
	}
	return conflict()
}

// write stores bs (the live ones) as key's hash if its version is still ver; false means a conflict.
func (s *redisStore) write(ctx context.Context, c rueidis.Client, key, aor, ver string, bs []Binding, now int64) (bool, error) {
	live := make([]Binding, 0, len(bs))
	var maxExp int64
	for i := range bs {
		if bs[i].Live(now) {
			live = append(live, bs[i])
			maxExp = max(maxExp, bs[i].Expires)
		}
	}
	args := make([]string, 3, 3+2*len(live))
	args[0] = ver
	args[1] = strconv.FormatUint(rand.Uint64(), 36)
	args[2] = strconv.FormatInt(maxExp*1000, 10)
	if len(live) > 0 {
		names := contactFields(live)
		var buf []byte
		for i := range live {
			buf = appendBinding(buf[:0], i, &live[i])
			args = append(args, names[i], string(buf))
		}
	}
	n, err := s.cas.Exec(ctx, c, []string{key}, args).AsInt64()
	if err != nil {
		return false, err // the caller turns it into the error to return (fail)
	}
	if n != 1 {
		return false, nil
	}
	for i := range live {
		live[i].AOR = aor
	}
	s.cache.wrote(key, live, args[1], time.Now())
	return true, nil
}

// Delete removes one contact (through Update) or the whole AOR (one DEL).
func (s *redisStore) Delete(table, aor, contact string) (bool, error) {
	if contact == "" {
		c := s.conn()
		key := s.key(table, aor)
		if c == nil {
			return false, fmt.Errorf("usrloc redis: delete %s: %w", key, ErrUnavailable)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		n, err := c.Do(ctx, c.B().Del().Key(key).Build()).AsInt64()
		if err != nil {
			return false, s.fail("delete "+key, err)
		}
		s.cache.wrote(key, nil, "", time.Now())
		return n > 0, nil
	}
	var removed bool
	err := s.Update(table, aor, func(cur []Binding) ([]Binding, error) {
		removed = false // fn may run again after a conflict
		out := cur[:0]
		for _, b := range cur {
			if b.Contact == contact {
				removed = true
				continue
			}
			out = append(out, b)
		}
		return out, nil
	})
	return removed && err == nil, err
}

// Range SCANs the keys of table (every table for "") and reads them in pipelined batches. It is for dumps
// and keepalives: each call is bounded by redis_timeout but the whole walk is not. SCAN may give a key
// twice while Redis rehashes; a binding may then be seen twice.
func (s *redisStore) Range(table string, fn func(table string, b *Binding) bool) error {
	c := s.conn()
	if c == nil {
		return fmt.Errorf("usrloc redis: range: %w", ErrUnavailable)
	}
	pattern := globEscape(s.prefix) + "*"
	if table != "" {
		pattern = globEscape(s.prefix) + globEscape(table) + ":*"
	}
	var cursor uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(scanCount).Type("hash").Build()).AsScanEntry()
		if err != nil {
			cancel()
			return s.fail("scan "+pattern, err)
		}
		cmds := make(rueidis.Commands, len(e.Elements))
		for i, k := range e.Elements {
			cmds[i] = c.B().Hgetall().Key(k).Build()
		}
		var res []rueidis.RedisResult
		if len(cmds) > 0 {
			res = c.DoMulti(ctx, cmds...)
		}
		cancel()
		now := time.Now().Unix()
		for i, k := range e.Elements {
			h, err := res[i].AsStrMap()
			if err != nil {
				if _, isRedis := rueidis.IsRedisErr(err); isRedis {
					continue // not a hash: not ours
				}
				return s.fail("read "+k, err)
			}
			tbl, aor, ok := strings.Cut(strings.TrimPrefix(k, s.prefix), ":")
			if !ok {
				continue
			}
			bs, _, _ := decodeHash(h, aor)
			for j := range bs {
				if bs[j].Live(now) && !fn(tbl, &bs[j]) {
					return nil
				}
			}
		}
		cursor = e.Cursor
		if cursor == 0 {
			return nil
		}
	}
}

// Counts returns the AORs and contacts found by the last count (every timer_interval): approximate, since
// bindings that expired but were not yet removed by an update still count until their key expires.
func (s *redisStore) Counts() (aors, contacts int) {
	return int(s.aors.Load()), int(s.contacts.Load())
}

// Close stops the probe and count loop and closes the connection.
func (s *redisStore) Close() error {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		if b := s.client.Load(); b != nil {
			b.c.Close()
		}
	})
	return nil
}

// loop is the store's one goroutine: it probes Redis while the store is down, and every timer_interval
// recounts the keys and prunes the local cache.
func (s *redisStore) loop() {
	defer close(s.done)
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	var nextCount time.Time // zero: count as soon as Redis answers
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.wake:
		}
		if s.down.Load() && !s.probe() {
			continue
		}
		if now := time.Now(); now.After(nextCount) {
			nextCount = now.Add(s.every)
			s.cache.prune(now.Unix())
			if err := s.recount(); err != nil {
				s.logLimited("count", "redis: counting the location table failed", "err", err)
			}
		}
	}
}

// probe asks Redis whether it is back, connecting first if the store never connected; on success the
// store is up again.
func (s *redisStore) probe() bool {
	b := s.client.Load()
	if b == nil {
		if err := s.connect(); err != nil {
			s.logLimited("probe", "redis still unreachable", "addr", s.opt.InitAddress[0], "err", err)
			return false
		}
		b = s.client.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := b.c.Do(ctx, b.c.B().Ping().Build()).Error(); err != nil {
		s.logLimited("probe", "redis still unreachable", "addr", s.opt.InitAddress[0], "err", err)
		return false
	}
	// Whatever was cached before the outage must be read again (the connection and its tracking may be
	// new); the stale copies stay until then.
	s.cache.invalidate(nil)
	s.down.Store(false)
	if n, ok := s.limit.allow("up", time.Now()); ok {
		s.log.Info("redis reachable again", "addr", s.opt.InitAddress[0], "suppressed", n)
	}
	return true
}

// recount refreshes the counts. One node per timer_interval counts (whoever takes the lock key first) and
// leaves the result in countsKey for the others, so the cost of a count does not grow with the nodes.
func (s *redisStore) recount() error {
	c := s.conn()
	if c == nil {
		return ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	lock := c.B().Set().Key(s.prefix + countLockKey).Value("1").Nx().Px(s.every * 9 / 10).Build()
	if err := c.Do(ctx, lock).Error(); rueidis.IsRedisNil(err) {
		// Another node counts this round: take its last result, or count if there is none yet.
		if v, err := c.Do(ctx, c.B().Get().Key(s.prefix+countsKey).Build()).ToString(); err == nil {
			var a, n int64
			if _, err := fmt.Sscan(v, &a, &n); err == nil {
				s.aors.Store(a)
				s.contacts.Store(n)
				return nil
			}
		}
	} else if err != nil {
		return s.fail("count lock", err)
	}
	aors, contacts, err := s.countAll()
	if err != nil {
		return err
	}
	s.aors.Store(aors)
	s.contacts.Store(contacts)
	ctx2, cancel2 := context.WithTimeout(context.Background(), s.timeout)
	defer cancel2()
	return c.Do(ctx2, c.B().Set().Key(s.prefix+countsKey).Value(fmt.Sprint(aors, contacts)).Px(3*s.every).Build()).Error()
}

// countAll SCANs the keys under the prefix (the AORs) and HLENs them in pipelined batches (contacts: the
// fields but the version). Past countSample keys the contacts are extrapolated from the first ones.
func (s *redisStore) countAll() (aors, contacts int64, err error) {
	c := s.conn()
	if c == nil {
		return 0, 0, ErrUnavailable
	}
	pattern := globEscape(s.prefix) + "*"
	var cursor uint64
	var sampled, sampledContacts int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(scanCount).Type("hash").Build()).AsScanEntry()
		if err != nil {
			cancel()
			return 0, 0, s.fail("scan "+pattern, err)
		}
		aors += int64(len(e.Elements))
		if sampled < countSample && len(e.Elements) > 0 {
			cmds := make(rueidis.Commands, len(e.Elements))
			for i, k := range e.Elements {
				cmds[i] = c.B().Hlen().Key(k).Build()
			}
			for _, r := range c.DoMulti(ctx, cmds...) {
				if n, err := r.AsInt64(); err == nil && n > 0 {
					sampled++
					sampledContacts += n - 1
				}
			}
		}
		cancel()
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	if sampled == 0 {
		return aors, 0, nil
	}
	return aors, sampledContacts * aors / sampled, nil
}

// fail turns a failed call into the error to return. Anything but an error reply from Redis means Redis
// cannot be reached (connection refused or lost, deadline): the store goes down until the probe succeeds.
// Replies that say Redis cannot serve now (LOADING, BUSY, READONLY …) wrap ErrUnavailable too.
func (s *redisStore) fail(what string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok {
		switch code, _, _ := strings.Cut(re.Error(), " "); code {
		case "LOADING", "BUSY", "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS":
			return fmt.Errorf("usrloc redis: %s: %w: %w", what, ErrUnavailable, err)
		}
		return fmt.Errorf("usrloc redis: %s: %w", what, err)
	}
	if s.down.CompareAndSwap(false, true) {
		s.logLimited("down", "redis unreachable: location updates fail, lookups answer from the cache until it is back",
			"addr", s.opt.InitAddress[0], "err", err)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return fmt.Errorf("usrloc redis: %s: %w: %w", what, ErrUnavailable, err)
}

// logLimited logs a warning of kind at most once every logEvery, with the number of lines left out.
func (s *redisStore) logLimited(kind, msg string, args ...any) {
	if n, ok := s.limit.allow(kind, time.Now()); ok {
		if n > 0 {
			args = append(args, "suppressed", n)
		}
		s.log.Warn(msg, args...)
	}
}

type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	left map[string]int
}

func (l *logLimiter) allow(kind string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.left = make(map[string]time.Time), make(map[string]int)
	}
	if t, seen := l.last[kind]; seen && now.Sub(t) < logEvery {
		l.left[kind]++
		return 0, false
	}
	l.last[kind] = now
	n := l.left[kind]
	l.left[kind] = 0
	return n, true
}

// globEscape escapes the glob characters of SCAN MATCH.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
