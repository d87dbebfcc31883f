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
// Why not context.WithTimeout per message: that allocates and arms a runtime timer per message, and the
// VM's per-instruction check is the same either way. Here a worker keeps one budget for its life: starting
// a route is one atomic store, ending it one CAS; a single watchdog goroutine per engine closes the Done
// channel of a worker whose route overran, and only then does the worker make a new channel.
type budget struct {
	// ch is the Done channel. Only the worker's goroutine writes it (after a cancel) and reads it without
	// the lock (the VM polling it); the watchdog reads it under mu to close it, and the worker writes it
	// under mu.
	ch chan struct{}
	mu sync.Mutex
	// start is when the running route began (ns since the engine started, never 0), 0 when idle, or
	// budgetFired once the watchdog cancelled it.
	start atomic.Int64
	limit *atomic.Int64 // the engine's route_timeout in ns (a reload may change it)
}

const budgetFired = -1

func newBudget(limit *atomic.Int64) *budget { return &budget{ch: make(chan struct{}), limit: limit} }

func (b *budget) Deadline() (time.Time, bool) { return time.Time{}, false }
func (b *budget) Done() <-chan struct{}       { return b.ch }
func (b *budget) Value(any) any               { return nil }

// Err is what the VM raises when Done is closed: its text ends up after the script's file:line.
func (b *budget) Err() error {
	if b.start.Load() == budgetFired {
		return fmt.Errorf("%w: did not finish within %v", ErrRouteTimeout, time.Duration(b.limit.Load()))
	}
	return nil
}

// begin marks the start of a message's routes; now is ns since the engine started.
func (b *budget) begin(now int64) { b.start.Store(max(now, 1)) }

// end marks the routes done and reports whether the watchdog cancelled them; a cancelled budget gets a
// fresh channel for the next message.
func (b *budget) end() (fired bool) {
	s := b.start.Load()
	if s != budgetFired && b.start.CompareAndSwap(s, 0) {
		return false
	}
	b.mu.Lock()
	b.ch = make(chan struct{})
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
		close(b.ch)
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

// RouteTimeouts counts Lua calls cancelled by route_timeout (also counted in LuaErrors).
func (s *Stats) RouteTimeouts() uint64 { return s.routeTimeouts.Load() }

// Budget is the context that bounds the Lua calls of the message (nil outside a worker): a script
// binding gives it to its VM.
func (m *Msg) Budget() context.Context {
	if m.budget == nil {
		return nil
	}
	return m.budget
}
