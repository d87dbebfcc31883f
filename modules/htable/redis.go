package htable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// redisStore keeps a table in Redis: one key per item (redis_prefix + table + ":" + key) with the item's
// lifetime as the key's TTL, so Redis expires items itself and every node sharing the server sees the
// same table. Integers are stored as decimal text (INCRBY works on them), strings with an "s:" prefix so
// that the string "12" stays a string. Every call is bounded by redis_timeout; while Redis is unreachable
// reads give nothing (as a missing item) and writes fail (-1), and the store reconnects in the background.
type redisStore struct {
	t       *table
	log     *slog.Logger
	prefix  string // redis_prefix + table + ":"
	timeout time.Duration
	opt     rueidis.ClientOption

	mu         sync.Mutex
	client     rueidis.Client // nil while not connected
	connecting bool

	n       atomic.Int64
	lastLog atomic.Int64
	addLua  *rueidis.Lua
	keepLua *rueidis.Lua
	closed  atomic.Bool
}

var errRedisDown = errors.New("redis not connected")

// addScript is sht_inc/sht_dec on the server, atomic with respect to every node: a missing item starts
// from initval (when the table has one), a string item fails (nil), the TTL follows updateexpire.
// KEYS[1] the item; ARGV: delta, has initval ("1"), initval, autoexpire ms ("0" none), updateexpire ("1").
const addScript = `
local created = false
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[2] ~= '1' then return false end
  redis.call('SET', KEYS[1], ARGV[3])
  created = true
end
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' then return false end
if created or ARGV[5] == '1' then
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
end
return n
`

// keepScript sets an item keeping the TTL of an existing one (updateexpire = false); a new one gets
// autoexpire. KEYS[1] the item; ARGV: the encoded value, autoexpire ms ("0" none).
const keepScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
if tonumber(ARGV[2]) > 0 then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return redis.call('SET', KEYS[1], ARGV[1])
`

func newRedisStore(t *table, c *TableConf, timeout time.Duration, log *slog.Logger) (*redisStore, error) {
	opt, err := rueidis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url %q: %w", c.RedisURL, err)
	}
	if len(opt.InitAddress) != 1 {
		return nil, fmt.Errorf("redis_url %q: expected one server, got %d", c.RedisURL, len(opt.InitAddress))
	}
	opt.Dialer.Timeout = timeout
	opt.ConnWriteTimeout = max(3*timeout, time.Second)
	opt.DisableCache = true // every read goes to Redis: items change on other nodes
	opt.DisableRetry = true // a failed call reports at once, within the route budget
	opt.ForceSingleClient = true
	s := &redisStore{t: t, log: log, prefix: c.RedisPrefix + t.name + ":", timeout: timeout, opt: opt,
		addLua: rueidis.NewLuaScript(addScript), keepLua: rueidis.NewLuaScript(keepScript)}
	cl, err := rueidis.NewClient(opt)
	if err != nil {
		if _, refused := rueidis.IsRedisErr(err); refused {
			// Redis answered and said no (NOAUTH, a database that does not exist): a configuration error.
			return nil, fmt.Errorf("redis at %s (redis_url): %w", opt.InitAddress[0], err)
		}
		log.Warn("htable: redis unreachable at start; the table is empty until it answers",
			"table", t.name, "addr", opt.InitAddress[0], "err", err)
		s.reconnect()
		return s, nil
	}
	s.client = cl
	s.recount()
	return s, nil
}

// conn returns the client, or nil while not connected.
func (s *redisStore) conn() rueidis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// reconnect dials in the background, once a second, until Redis answers: never on a route worker.
func (s *redisStore) reconnect() {
	s.mu.Lock()
	if s.connecting || s.closed.Load() {
		s.mu.Unlock()
		return
	}
	s.connecting = true
	s.mu.Unlock()
	go func() {
		for !s.closed.Load() {
			cl, err := rueidis.NewClient(s.opt)
			if err == nil {
				s.mu.Lock()
				s.client, s.connecting = cl, false
				s.mu.Unlock()
				if s.closed.Load() {
					cl.Close()
				}
				s.log.Info("htable: redis connected", "table", s.t.name, "addr", s.opt.InitAddress[0])
				s.recount()
				return
			}
			time.Sleep(time.Second)
		}
	}()
}

// staleConn tells a call that failed because the connection it was queued on had broken (Redis restarted
// or dropped it while idle: EOF, reset) from one Redis refused or that timed out. Right after Redis comes
// back the first calls can still meet the dead connection even after others succeeded on the new one
// (TestRedisDown saw a GET fail with EOF after a successful SET and GET); retries are off so that a
// call fails within the route budget, so a read, which is safe to send twice, is sent once more within the
// same deadline. Writes are not: an INCRBY must not be applied twice.
func staleConn(err error) bool {
	if err == nil || rueidis.IsRedisNil(err) {
		return false
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && !ne.Timeout())
}

// fail logs a Redis error (at most every 10 s per table) and wraps it.
func (s *redisStore) fail(what string, err error) error {
	if now := time.Now().Unix(); s.lastLog.Load() < now-10 {
		s.lastLog.Store(now)
		s.log.Warn("htable: redis call failed", "table", s.t.name, "op", what, "err", err)
	}
	return fmt.Errorf("htable %s: redis %s: %w", s.t.name, what, err)
}

func (s *redisStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func encode(it item) string {
	if it.str {
		return "s:" + it.s
	}
	return strconv.FormatInt(it.n, 10)
}

func decode(v string) item {
	if s, ok := strings.CutPrefix(v, "s:"); ok {
		return item{str: true, s: s}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return item{n: n}
	}
	return item{str: true, s: v} // written by someone else: a string as it is
}

// withTTL turns a PTTL answer into an absolute expiry.
func withTTL(it item, pttl int64, now int64) item {
	if pttl > 0 {
		it.exp = now + pttl
	}
	return it
}

func (s *redisStore) get(key string) (item, bool, error) {
	c := s.conn()
	if c == nil {
		return item{}, false, errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.prefix + key
	res := c.DoMulti(ctx, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build())
	v, err := res[0].ToString()
	if staleConn(err) { // a read is safe to send again, on the connection rueidis dials now
		res = c.DoMulti(ctx, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build())
		v, err = res[0].ToString()
	}
	if rueidis.IsRedisNil(err) {
		return item{}, false, nil
	}
	if err != nil {
		return item{}, false, s.fail("GET", err)
	}
	pttl, _ := res[1].AsInt64()
	return withTTL(decode(v), pttl, nowMs()), true, nil
}

func (s *redisStore) peek(key string) (item, bool, error) {
	c := s.conn()
	if c == nil {
		return item{}, false, errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	v, err := c.Do(ctx, c.B().Get().Key(s.prefix+key).Build()).ToString()
	if staleConn(err) {
		v, err = c.Do(ctx, c.B().Get().Key(s.prefix+key).Build()).ToString()
	}
	if rueidis.IsRedisNil(err) {
		return item{}, false, nil
	}
	if err != nil {
		return item{}, false, s.fail("GET", err)
	}
	return decode(v), true, nil
}

func (s *redisStore) set(key string, it item, ttlMs int64) error {
	c := s.conn()
	if c == nil {
		return errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k, v := s.prefix+key, encode(it)
	var err error
	switch {
	case ttlMs > 0:
		err = c.Do(ctx, c.B().Set().Key(k).Value(v).PxMilliseconds(ttlMs).Build()).Error()
	case !s.t.updateExpire:
		err = s.keepLua.Exec(ctx, c, []string{k}, []string{v, strconv.FormatInt(s.t.expireMs, 10)}).Error()
	case s.t.expireMs > 0:
		err = c.Do(ctx, c.B().Set().Key(k).Value(v).PxMilliseconds(s.t.expireMs).Build()).Error()
	default:
		err = c.Do(ctx, c.B().Set().Key(k).Value(v).Build()).Error()
	}
	if err != nil {
		return s.fail("SET", err)
	}
	return nil
}

func (s *redisStore) setExpire(key string, secs int64) error {
	c := s.conn()
	if c == nil {
		return errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.prefix + key
	cmd := c.B().Persist().Key(k).Build()
	if secs > 0 {
		cmd = c.B().Pexpire().Key(k).Milliseconds(secs * 1000).Build()
	}
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return s.fail("PEXPIRE", err)
	}
	return nil
}

func (s *redisStore) add(key string, delta int64) (int64, bool, error) {
	c := s.conn()
	if c == nil {
		return 0, false, errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	hasInit, ue := "0", "0"
	if s.t.hasInit {
		hasInit = "1"
	}
	if s.t.updateExpire {
		ue = "1"
	}
	n, err := s.addLua.Exec(ctx, c, []string{s.prefix + key}, []string{strconv.FormatInt(delta, 10), hasInit,
		strconv.FormatInt(s.t.initVal, 10), strconv.FormatInt(s.t.expireMs, 10), ue}).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.fail("INCRBY", err)
	}
	return n, true, nil
}

func (s *redisStore) del(key string) error {
	c := s.conn()
	if c == nil {
		return errRedisDown
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := c.Do(ctx, c.B().Del().Key(s.prefix+key).Build()).Error(); err != nil {
		return s.fail("DEL", err)
	}
	return nil
}

// scan calls fn with each batch of the table's keys (without the prefix). Each SCAN step is bounded by
// redis_timeout, the walk as a whole is not: it is for ctl commands, iterators and regex removals.
func (s *redisStore) scan(fn func(c rueidis.Client, keys []string) error) error {
	c := s.conn()
	if c == nil {
		return errRedisDown
	}
	pattern := globEscape(s.prefix) + "*"
	var cursor uint64
	for {
		ctx, cancel := s.ctx()
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(500).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return s.fail("SCAN", err)
		}
		if len(e.Elements) > 0 {
			if err := fn(c, e.Elements); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

var errStop = errors.New("stop")

func (s *redisStore) walk(fn func(key string, it item) bool) error {
	err := s.scan(func(c rueidis.Client, keys []string) error {
		cmds := make(rueidis.Commands, 0, 2*len(keys))
		for _, k := range keys {
			cmds = append(cmds, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build())
		}
		ctx, cancel := s.ctx()
		res := c.DoMulti(ctx, cmds...)
		cancel()
		now := nowMs()
		for i, k := range keys {
			v, err := res[2*i].ToString()
			if rueidis.IsRedisNil(err) {
				continue // expired or removed since the SCAN
			}
			if err != nil {
				return s.fail("GET", err)
			}
			pttl, _ := res[2*i+1].AsInt64()
			if !fn(strings.TrimPrefix(k, s.prefix), withTTL(decode(v), pttl, now)) {
				return errStop
			}
		}
		return nil
	})
	if err == errStop {
		return nil
	}
	return err
}

func (s *redisStore) deleteIf(fn func(key string, it item) bool) (int, error) {
	var doomed []string
	if err := s.walk(func(k string, it item) bool {
		if fn(k, it) {
			doomed = append(doomed, s.prefix+k)
		}
		return true
	}); err != nil {
		return 0, err
	}
	return len(doomed), s.unlink(doomed)
}

func (s *redisStore) unlink(keys []string) error {
	c := s.conn()
	if c == nil {
		return errRedisDown
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		ctx, cancel := s.ctx()
		err := c.Do(ctx, c.B().Unlink().Key(batch...).Build()).Error()
		cancel()
		if err != nil {
			return s.fail("UNLINK", err)
		}
	}
	return nil
}

func (s *redisStore) reset() error {
	return s.scan(func(c rueidis.Client, keys []string) error { return s.unlink(keys) })
}

func (s *redisStore) count() int { return int(s.n.Load()) }

// recount counts the table's keys (for the gauge and htable.stats); Redis expires keys itself.
func (s *redisStore) recount() {
	n := 0
	if err := s.scan(func(_ rueidis.Client, keys []string) error { n += len(keys); return nil }); err == nil {
		s.n.Store(int64(n))
	}
}

func (s *redisStore) sweep(int64) {
	if s.conn() == nil {
		return
	}
	s.recount()
}

func (s *redisStore) close() {
	s.closed.Store(true)
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// globEscape quotes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
