package acc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// sink is where an output writes: one record at a time, from the output's goroutine.
type sink interface {
	write(r *Record) error
	close()
}

// output is one destination with its bounded queue and its writer goroutine. A record the sink refuses
// is tried again every retry_interval, so a short outage loses nothing while the queue has room.
type output struct {
	a     *Acc
	name  string
	s     sink
	q     chan *Record
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	logMu sync.Mutex
	last  time.Time // last failure logged (one line per 10 s)
}

func (a *Acc) newOutput(name string, s sink) *output {
	o := &output{a: a, name: name, s: s, q: make(chan *Record, a.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
	go o.run()
	return o
}

// put queues a record without waiting: a full queue drops it and counts it.
func (o *output) put(r *Record) {
	select {
	case o.q <- r:
	default:
		o.a.dropped.Add(1)
		o.logFailure(errors.New("buffer full: record dropped"))
	}
}

func (o *output) logFailure(err error) {
	o.logMu.Lock()
	defer o.logMu.Unlock()
	if time.Since(o.last) < 10*time.Second {
		return
	}
	o.last = time.Now()
	o.a.logger().Warn("accounting output failing", "output", o.name, "err", err, "queued", len(o.q),
		"dropped", o.a.dropped.Load())
}

func (o *output) run() {
	defer close(o.done)
	retry := time.Duration(o.a.RetryInterval) * time.Millisecond
	for {
		var r *Record
		select {
		case r = <-o.q:
		case <-o.stop:
			o.drain()
			return
		}
		for {
			err := o.s.write(r)
			if err == nil {
				o.a.written.Add(1)
				break
			}
			o.logFailure(err)
			select {
			case <-o.stop:
				o.a.dropped.Add(int64(1 + len(o.q)))
				return
			case <-time.After(retry):
			}
		}
	}
}

// drain writes what is queued at stop, giving up (and counting the rest as dropped) after a second.
func (o *output) drain() {
	end := time.Now().Add(time.Second)
	for {
		select {
		case r := <-o.q:
			if time.Now().After(end) || o.s.write(r) != nil {
				o.a.dropped.Add(int64(1 + len(o.q)))
				return
			}
			o.a.written.Add(1)
		default:
			return
		}
	}
}

func (o *output) close() {
	o.once.Do(func() {
		close(o.stop)
		<-o.done
		o.s.close()
	})
}

// fileSink appends JSON lines to a file, opening it again after a failure (rotated, or its disk came
// back).
type fileSink struct {
	path string
	f    *os.File
}

func (s *fileSink) write(r *Record) error {
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("open %s: %w", s.path, err)
		}
		s.f = f
	}
	b, _ := r.MarshalJSON()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		s.f.Close()
		s.f = nil
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}

func (s *fileSink) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// redisSink adds records to a stream (XADD), one stream field per record field. It connects on its
// first write, so that a Redis that is down when siplua starts only delays the records.
type redisSink struct {
	opt     rueidis.ClientOption
	c       rueidis.Client
	key     string
	maxLen  int
	timeout time.Duration
}

func newRedisSink(a *Acc) (*redisSink, error) {
	opt, err := rueidis.ParseURL(a.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url %q: %w", a.RedisURL, err)
	}
	to := time.Duration(a.RedisTimeout) * time.Millisecond
	opt.DisableCache = true
	opt.Dialer.Timeout = to
	opt.ConnWriteTimeout = max(3*to, time.Second)
	return &redisSink{opt: opt, key: a.RedisStream, maxLen: a.RedisMaxLen, timeout: to}, nil
}

func (s *redisSink) write(r *Record) error {
	if s.c == nil {
		c, err := rueidis.NewClient(s.opt)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		s.c = c
	}
	args := make([]string, 0, 4+2*len(r.keys))
	if s.maxLen > 0 {
		args = append(args, "MAXLEN", "~", strconv.Itoa(s.maxLen))
	}
	args = append(args, "*")
	for i, k := range r.keys {
		args = append(args, k, r.vals[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.c.Do(ctx, s.c.B().Arbitrary("XADD").Keys(s.key).Args(args...).Build()).Error(); err != nil {
		return fmt.Errorf("XADD %s: %w", s.key, err)
	}
	return nil
}

func (s *redisSink) close() {
	if s.c != nil {
		s.c.Close()
	}
}
