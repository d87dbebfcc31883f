package engine

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The engine keeps the last reloads and the last route errors for the web status page (engine/web): small
// fixed rings, written only on a reload or a script error, never on a message's normal path.

// ReloadEvent is one reload attempt.
type ReloadEvent struct {
	Time       time.Time
	OK         bool
	Generation uint64        // serving after the attempt (unchanged when it failed)
	Duration   time.Duration // compile, new states, module reloads
	Errors     []string      // the problems, one "file:line: message" each, when it failed
	Warnings   []string
}

// RouteErrorEvent is one script error while routing.
type RouteErrorEvent struct {
	Time   time.Time
	Route  string // "request" or "reply"
	Where  string // "script.lua:12", "" when the error has no place
	Err    string
	Method string // the request's method; "" for a reply
	CallID string
}

const (
	reloadHistory = 32
	routeErrorLog = 64 // a power of two: the ring index is seq % routeErrorLog
)

type events struct {
	mu      sync.Mutex
	reloads []ReloadEvent // oldest first, at most reloadHistory

	errSeq atomic.Uint64
	errs   [routeErrorLog]atomic.Pointer[RouteErrorEvent] // lock-free: workers that fail at once never wait
}

func (ev *events) addReload(r ReloadEvent) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.reloads) == reloadHistory {
		ev.reloads = append(ev.reloads[:0], ev.reloads[1:]...)
	}
	ev.reloads = append(ev.reloads, r)
}

func (ev *events) addRouteError(route string, m *Msg, err error) {
	r := &RouteErrorEvent{Time: time.Now(), Route: route, Err: err.Error(), CallID: callID(m)}
	var re *RouteError
	if errors.As(err, &re) {
		r.Where, r.Err = re.Where, re.Err.Error()
	}
	if route == "request" {
		r.Method = m.Method()
	}
	n := ev.errSeq.Add(1)
	ev.errs[n%routeErrorLog].Store(r)
}

// ReloadHistory returns the last reload attempts, newest first.
func (e *Engine) ReloadHistory() []ReloadEvent {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	out := make([]ReloadEvent, len(e.events.reloads))
	for i, r := range e.events.reloads {
		out[len(out)-1-i] = r
	}
	return out
}

// RouteErrors returns the last script errors while routing, newest first, and how many there were in all.
func (e *Engine) RouteErrors() (last []RouteErrorEvent, total uint64) {
	n := e.events.errSeq.Load()
	for i := uint64(0); i < routeErrorLog && i < n; i++ {
		if r := e.events.errs[(n-i)%routeErrorLog].Load(); r != nil {
			last = append(last, *r)
		}
	}
	return last, n
}

// ErrorLines splits an error into its problems, one "file:line: message" each (engine.Errors joined).
func ErrorLines(err error) []string {
	var es Errors
	var lines []string
	if errors.As(err, &es) {
		for _, e := range es {
			lines = append(lines, strings.Split(e.Error(), "\n")...)
		}
	} else {
		lines = strings.Split(err.Error(), "\n")
	}
	return lines
}
