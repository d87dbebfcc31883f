package dialog

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// The Redis backend writes every change of a dialog to one hash (<redis_prefix>dialogs, a field per
// dialog: Call-ID and From tag) from one goroutine, so that no route worker waits on Redis; a restarted
// node loads the hash at start and arms the timers again, and every node reading the hash sees the calls.
// The queue is bounded: when Redis is away long enough to fill it, changes are dropped and counted (the
// next change of a dialog writes it whole again).

const storeQueue = 4096

type storeOp struct {
	field string
	data  []byte // nil: delete
}

type redisStore struct {
	d       *Dialog
	client  rueidis.Client
	key     string
	timeout time.Duration
	q       chan storeOp
	dropped int64
	mu      sync.Mutex
	wg      sync.WaitGroup
}

func newRedisStore(d *Dialog) (*redisStore, error) {
	opt, err := rueidis.ParseURL(d.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url %q: %w", d.RedisURL, err)
	}
	to := time.Duration(d.RedisTimeout) * time.Millisecond
	opt.DisableCache = true
	opt.Dialer.Timeout = to
	opt.ConnWriteTimeout = max(3*to, time.Second)
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", d.RedisURL, err)
	}
	s := &redisStore{d: d, client: c, key: d.RedisPrefix + "dialogs", timeout: to, q: make(chan storeOp, storeQueue)}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

func (s *redisStore) run() {
	defer s.wg.Done()
	for op := range s.q {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		var err error
		if op.data == nil {
			err = s.client.Do(ctx, s.client.B().Hdel().Key(s.key).Field(op.field).Build()).Error()
		} else {
			err = s.client.Do(ctx, s.client.B().Hset().Key(s.key).FieldValue().FieldValue(op.field, string(op.data)).Build()).Error()
		}
		cancel()
		if err != nil {
			s.d.logger().Warn("dialog not written to redis", "err", err)
		}
	}
}

func (s *redisStore) put(op storeOp) {
	select {
	case s.q <- op:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
	}
}

func (s *redisStore) close() {
	close(s.q)
	s.wg.Wait()
	s.client.Close()
}

func storeField(in *Info) string { return in.CallID + "\x00" + in.FromTag }

// save writes a dialog to the backend (memory: nothing to do).
func (d *Dialog) save(in Info) {
	if d.store == nil {
		return
	}
	b, err := json.Marshal(&in)
	if err != nil {
		return
	}
	d.store.put(storeOp{field: storeField(&in), data: b})
}

// forget removes an ended dialog from the backend.
func (d *Dialog) forget(in Info) {
	if d.store == nil {
		return
	}
	d.store.put(storeOp{field: storeField(&in)})
}

// loadStore reads the dialogs the backend holds (a restart, or another node's) into the table, with
// their lifetime timers; dialogs whose lifetime is over end at once (without BYE: nobody knows whether
// the call is still up).
func (d *Dialog) loadStore() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*d.store.timeout+time.Second)
	defer cancel()
	m, err := d.store.client.Do(ctx, d.store.client.B().Hgetall().Key(d.store.key).Build()).AsStrMap()
	if err != nil {
		return fmt.Errorf("load %s: %w", d.store.key, err)
	}
	now := time.Now()
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	for field, v := range m {
		var in Info
		if err := json.Unmarshal([]byte(v), &in); err != nil || in.CallID == "" {
			d.logger().Warn("bad dialog in redis", "field", field, "err", err)
			continue
		}
		if x, _ := d.tab.match(in.CallID, in.FromTag, in.ToTag); x != nil {
			continue
		}
		in.HEntry, in.HID = hEntry(in.CallID), d.seq.Add(1)
		x := &dlg{Info: in}
		x.sides.callerDst, _ = parseAddr(in.CallerAddr)
		x.sides.calleeDst, _ = parseAddr(in.CalleeAddr)
		d.tab.add(x)
		if in.State >= StateConfirmedNA {
			left := time.Unix(0, in.StartNS).Add(time.Duration(in.Timeout) * time.Second).Sub(now)
			d.armLocked(x, max(left, time.Millisecond))
			d.stats.active.Add(1)
		} else {
			left := time.Unix(in.Created, 0).Add(time.Duration(d.EarlyTimeout) * time.Second).Sub(now)
			x.timer = time.AfterFunc(max(left, time.Millisecond), func() { d.onTimer(x) })
			d.stats.early.Add(1)
		}
	}
	return nil
}
