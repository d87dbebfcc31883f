package tm

import (
	"container/heap"
	"sync"
	"time"
)

// timers runs the transaction and branch timers (retransmissions, fr_timer, wt_timer) from one min-heap
// serviced by one goroutine. time.AfterFunc would start a goroutine for every firing, and a busy proxy
// fires several per transaction; here a firing is a heap pop and a call. Callbacks run one at a time on
// the service goroutine, so they must not block: they take a transaction's lock only to update its state
// and decide what to send, and send (a socket write, or a queued TCP message) after releasing it (send.go).
type timers struct {
	mu   sync.Mutex
	base time.Time // deadlines are nanoseconds since base, on the monotonic clock
	h    timerHeap
	wake chan struct{} // an earlier deadline was scheduled
	stop chan struct{}
	done chan struct{}
}

// timer is one schedulable callback, like a *time.Timer from AfterFunc: Reset (re)arms it, Stop disarms it.
// Transactions and branches embed theirs (start arms it the first time), and it calls their fire method: a
// separate timer and a method-value closure cost two allocations and 64 B per transaction and per branch,
// kept for wt_timer.
type timer struct {
	f   firer // nil until first armed
	at  mono  // deadline
	idx int32 // position in the heap, -1 when not armed
}

// firer is what a timer calls (with no lock held), and the timers it runs on.
type firer interface {
	fire()
	timerSet() *timers
}

// funcFirer makes a func a firer (afterFunc).
type funcFirer struct {
	ts *timers
	fn func()
}

func (f *funcFirer) fire()             { f.fn() }
func (f *funcFirer) timerSet() *timers { return f.ts }

// mono is a point in time on the timers' clock: nanoseconds since timers.base, monotonic. 8 B where a
// time.Time takes 24, and transactions and branches keep several (their deadlines, their creation).
type mono int64

func (a mono) Add(d time.Duration) mono { return a + mono(d) }
func (a mono) Before(b mono) bool       { return a < b }
func (a mono) Sub(b mono) time.Duration { return time.Duration(a - b) }

// now is the time on the timers' clock (0 before init).
func (ts *timers) now() mono {
	if ts.base.IsZero() {
		return 0
	}
	return mono(time.Since(ts.base))
}

func (ts *timers) init() {
	ts.base = time.Now()
	ts.wake = make(chan struct{}, 1)
	ts.stop = make(chan struct{})
	ts.done = make(chan struct{})
	go ts.run()
}

// close stops the service goroutine; armed timers do not fire any more.
func (ts *timers) close() {
	if ts.stop == nil {
		return
	}
	select {
	case <-ts.stop:
	default:
		close(ts.stop)
	}
	<-ts.done
}

// afterFunc arms a new timer that calls fn after d.
func (ts *timers) afterFunc(d time.Duration, fn func()) *timer {
	t := &timer{}
	ts.start(t, &funcFirer{ts: ts, fn: fn}, d)
	return t
}

// start arms t, a timer embedded in its owner (zero until then), to call f.fire after d; it may be called
// again instead of Reset.
func (ts *timers) start(t *timer, f firer, d time.Duration) {
	if t.f == nil {
		t.f, t.idx = f, -1
	}
	t.Reset(d)
}

// armed reports whether the timer was ever armed (start).
func (t *timer) armed() bool { return t.f != nil }

// Reset arms the timer to fire after d, replacing an earlier schedule.
func (t *timer) Reset(d time.Duration) {
	ts := t.f.timerSet()
	at := ts.now().Add(d)
	ts.mu.Lock()
	t.at = at
	if t.idx >= 0 {
		heap.Fix(&ts.h, int(t.idx))
	} else {
		heap.Push(&ts.h, t)
	}
	first := ts.h[0] == t
	ts.mu.Unlock()
	if first {
		select {
		case ts.wake <- struct{}{}:
		default:
		}
	}
}

// Stop disarms the timer; it reports whether it was armed.
func (t *timer) Stop() bool {
	if t.f == nil { // never armed
		return false
	}
	ts := t.f.timerSet()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&ts.h, int(t.idx))
	return true
}

func (ts *timers) run() {
	defer close(ts.done)
	sleep := time.NewTimer(time.Hour)
	defer sleep.Stop()
	for {
		ts.mu.Lock()
		var next *timer
		wait := time.Hour
		if len(ts.h) > 0 {
			if d := ts.h[0].at.Sub(ts.now()); d <= 0 {
				next = heap.Pop(&ts.h).(*timer)
			} else {
				wait = d
			}
		}
		ts.mu.Unlock()
		if next != nil {
			next.f.fire() // outside ts.mu: the callback re-arms timers
			continue
		}
		sleep.Reset(wait)
		select {
		case <-ts.stop:
			return
		case <-ts.wake:
		case <-sleep.C:
		}
	}
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = int32(len(*h))
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
