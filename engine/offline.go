package engine

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Offline routing runs messages through the script and the modules without a network, for `siplua test`:
// the listeners are socketless (transport.AddOffline) and every message the engine or a module would send
// goes to a capture function instead. Messages are routed synchronously on worker 0, one at a time.

// Sent is one message the engine would have sent: a reply, a relayed request or reply, a module's own
// request (a ping).
type Sent struct {
	Proto Proto
	Local *Listener // the socket it would leave from (nil when none fits)
	Dst   netip.AddrPort
	Data  []byte // a copy
}

// ListenOffline is Listen without sockets: a socketless listener for each [core] listen address (an
// unspecified address becomes the loopback of its family and port 0 becomes 5060, so that what the script
// sees does not depend on the machine), and capture gets every send from now on. Call it instead of
// Listen, before the first RouteOffline; capture may be called from any goroutine (module timers).
func (e *Engine) ListenOffline(capture func(Sent)) {
	e.capture = capture
	for _, la := range e.cfg.Listen {
		a, port := la.Addr.Addr(), la.Addr.Port()
		if a.IsUnspecified() {
			a = netip.MustParseAddr("127.0.0.1")
			if la.Addr.Addr().Is6() {
				a = netip.IPv6Loopback()
			}
		}
		if port == 0 {
			port = 5060
		}
		e.tr.AddOffline(la.Proto, netip.AddrPortFrom(a, port))
	}
	e.listeners = e.tr.Listeners()
	if len(e.listeners) > 0 {
		sum := md5.Sum([]byte("siplua-stateless" + e.listeners[0].Addr.String()))
		e.tagPrefix = hex.EncodeToString(sum[:])
	}
	e.computeMyself()
}

func (e *Engine) captureSend(proto Proto, local *Listener, dst netip.AddrPort, b []byte) error {
	if local == nil || local.Proto != proto || !local.Fits(dst.Addr()) {
		local = e.tr.Pick(proto, dst.Addr())
	}
	e.capture(Sent{Proto: proto, Local: local, Dst: dst, Data: slices.Clone(b)})
	return nil
}

// OfflineResult is what routing one message offline did.
type OfflineResult struct {
	Msg      *Msg  // the message after its routes (not recycled): its R-URI, $du, flags, branches, AVPs
	Err      error // the script's error (a *RouteError) when the route failed; ErrRouteTimeout when it overran
	TimedOut bool
}

// RouteOffline routes one received message (a request or a reply) on worker 0 as a worker would, then runs
// the route jobs this queued (tm's failure routes), each bounded by [lua] route_timeout. The engine must
// have been set up with ListenOffline; calls must not overlap.
func (e *Engine) RouteOffline(buf []byte, src netip.AddrPort, proto Proto) OfflineResult {
	w := e.workers[0]
	m := &Msg{Buf: slices.Clone(buf), Src: src, Proto: proto, keep: true}
	m.Local = e.tr.Pick(proto, src.Addr())
	errs0, tos0 := e.stats.luaErrors.Load(), e.stats.routeTimeouts.Load()
	e.processOffline(w, m)
	for { // jobs the message queued (tm runs failure routes through them)
		select {
		case j := <-e.jobs:
			e.refillJobs()
			e.processOffline(w, j)
			continue
		default:
		}
		break
	}
	r := OfflineResult{Msg: m}
	if e.stats.routeTimeouts.Load() != tos0 {
		r.TimedOut = true
		r.Err = ErrRouteTimeout
	} else if e.stats.luaErrors.Load() != errs0 {
		r.Err = errors.New("script error (see the log)")
	}
	return r
}

// processOffline is process with a timer in place of the watchdog: the route is cancelled once it has run
// longer than route_timeout.
func (e *Engine) processOffline(w *worker, m *Msg) {
	limit := time.Duration(e.routeLimit.Load())
	t := time.AfterFunc(limit+limit/8+time.Millisecond, func() { w.budget.check(e.since()) })
	defer t.Stop()
	e.safeProcess(w, m)
}

// StopOffline stops the modules of an engine set up with ListenOffline (their timers, goroutines).
func (e *Engine) StopOffline() { e.stopModules() }

// ScriptState is the script state that routed m (nil when no worker routed it).
func (m *Msg) ScriptState() State { return m.st() }
