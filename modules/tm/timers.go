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
	h    timerHeap
	wake chan struct{} // an earlier deadline was scheduled
	stop chan struct{}
	done chan struct{}
}

// timer is one schedulable callback, like a *time.Timer from AfterFunc: Reset (re)arms it, Stop disarms it.
type timer struct {
	ts  *timers
	fn  func()
	at  time.Time
	idx int // position in the heap, -1 when not armed
}

func (ts *timers) init() {
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
	t := &timer{ts: ts, fn: fn, idx: -1}
	t.Reset(d)
	return t
}

// Reset arms the timer to fire after d, replacing an earlier schedule.
func (t *timer) Reset(d time.Duration) {
	ts := t.ts
	at := time.Now().Add(d)
	ts.mu.Lock()
	t.at = at
	if t.idx >= 0 {
		heap.Fix(&ts.h, t.idx)
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
	ts := t.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&ts.h, t.idx)
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
			if d := time.Until(ts.h[0].at); d <= 0 {
				next = heap.Pop(&ts.h).(*timer)
			} else {
				wait = d
			}
		}
		ts.mu.Unlock()
		if next != nil {
			next.fn() // outside ts.mu: the callback re-arms timers
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
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
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
