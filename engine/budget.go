package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRouteTimeout is the cause of a RouteError for a Lua call cancelled by [lua] route_timeout.
var ErrRouteTimeout = errors.New("route timeout")

// budget is one worker's time limit for the Lua calls of one message, as the context.Context the Lua VM
// polls before every instruction (gopher-lua's SetContext).
//
// Why not context.WithTimeout per message: that allocates and arms a runtime timer per message. Here a
// worker keeps one budget for its life: starting a route is one atomic store, ending it one CAS, and a
// single watchdog goroutine per engine cancels a worker whose route overran. And Done returns a nil channel
// until then: the VM's per-instruction select on a nil channel never touches a channel (a real channel
// costs a channel receive per Lua instruction, and much more under the race detector).
type budget struct {
	done atomic.Pointer[chan struct{}] // nil, or closedChan once cancelled
	mu   sync.Mutex                    // orders a cancel before the worker's reset
	// start is when the running route began (ns since the engine started, never 0), 0 when idle, or
	// budgetFired once the watchdog cancelled it.
	start atomic.Int64
	limit *atomic.Int64 // the engine's route_timeout in ns (a reload may change it)
}

const budgetFired = -1

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newBudget(limit *atomic.Int64) *budget { return &budget{limit: limit} }

func (b *budget) Deadline() (time.Time, bool) { return time.Time{}, false }
func (b *budget) Value(any) any               { return nil }

// Done is nil (never ready) while the route is within its budget.
func (b *budget) Done() <-chan struct{} {
	if p := b.done.Load(); p != nil {
		return *p
	}
	return nil
}

// Err is what the VM raises when Done is ready: its text ends up after the script's file:line.
func (b *budget) Err() error {
	if b.start.Load() == budgetFired {
		return fmt.Errorf("%w: did not finish within %v", ErrRouteTimeout, time.Duration(b.limit.Load()))
	}
	return nil
}

// begin marks the start of a message's routes; now is ns since the engine started.
func (b *budget) begin(now int64) { b.start.Store(max(now, 1)) }

// end marks the routes done and reports whether the watchdog cancelled them; a cancelled budget is reset
// for the next message.
func (b *budget) end() (fired bool) {
	s := b.start.Load()
	if s != budgetFired && b.start.CompareAndSwap(s, 0) {
		return false
	}
	b.mu.Lock() // the watchdog has finished cancelling: reset after it
	b.done.Store(nil)
	b.start.Store(0)
	b.mu.Unlock()
	return true
}

// check cancels the running route if it started more than limit before now.
func (b *budget) check(now int64) {
	s := b.start.Load()
	if s <= 0 || now-s <= b.limit.Load() {
		return
	}
	b.mu.Lock()
	if b.start.CompareAndSwap(s, budgetFired) {
		b.done.Store(&closedChan)
	}
	b.mu.Unlock()
}

// since is the budget clock: ns since the engine started (monotonic).
func (e *Engine) since() int64 { return int64(time.Since(e.start)) }

// watchdog cancels routes that overrun [lua] route_timeout until stop closes. It ticks at an eighth of
// the limit (1 to 25 ms), so a route is cancelled between limit and limit+tick after it started.
func (e *Engine) watchdog(stop <-chan struct{}) {
	tickFor := func(limit int64) time.Duration {
		return min(max(time.Duration(limit)/8, time.Millisecond), 25*time.Millisecond)
	}
	limit := e.routeLimit.Load()
	t := time.NewTicker(tickFor(limit))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if l := e.routeLimit.Load(); l != limit { // a reload changed route_timeout
				limit = l
				t.Reset(tickFor(limit))
			}
			now := e.since()
			for _, w := range e.workers {
				w.budget.check(now)
			}
		}
	}
}

// RouteTimeouts counts Lua calls cancelled by route_timeout.
func (s *Stats) RouteTimeouts() uint64 { return s.routeTimeouts.Load() }

// Budget is the context that bounds the Lua calls of the message (nil outside a worker): a script
// binding gives it to its VM.
func (m *Msg) Budget() context.Context {
	if m.w == nil || m.w.budget == nil { // the worker's, while it routes m
		return nil
	}
	return m.w.budget
}
