package engine

import (
	"errors"
	"net/netip"
)

// Kamailio's KEMI core callbacks ([kemi] table): functions of the script run for every received message,
// before routing, and before a request is sent out. The script state runs them (luabind); the engine
// decides when.

// KemiKind names one of the [kemi] callbacks.
type KemiKind uint8

const (
	KemiReceived   KemiKind = iota // kemi.received_route_callback (core:msg-received)
	KemiPreRouting                 // kemi.pre_routing_callback (core:pre-routing)
	KemiOnSend                     // kemi.onsend_route_callback (onsend_route)
)

// KemiCallbacks is implemented by a State that runs the [kemi] callbacks: HasKemi tells whether the script
// defines the function (so the engine pays nothing when it does not), RunKemi runs it with m.
type KemiCallbacks interface {
	HasKemi(k KemiKind) bool
	RunKemi(k KemiKind, m *Msg) error
}

// SendInfo is where a message is about to be sent: Kamailio's $snd(...) in the onsend callback.
type SendInfo struct {
	Proto Proto
	Local *Listener
	Dst   netip.AddrPort
	Buf   []byte
}

// SendInfo returns the send being decided while the onsend callback runs, nil elsewhere.
func (m *Msg) SendInfo() *SendInfo {
	if w := m.w; w != nil && w.sndMsg == m {
		return w.snd
	}
	return nil
}

// ErrOnSendDrop is the error of a send that the onsend callback dropped (KSR.drop()): Kamailio's
// E_ADM_PROHIBITED, forward returns -1.
var ErrOnSendDrop = errors.New("dropped by the onsend callback")

// kemiDrop runs callback k for a message being processed and tells whether the script dropped it
// (KSR.drop() / KSR.x.drop()): the engine then ends its processing.
func (e *Engine) kemiDrop(m *Msg, k KemiKind) bool {
	kc, ok := m.st().(KemiCallbacks)
	if !ok || !kc.HasKemi(k) {
		return false
	}
	if err := kc.RunKemi(k, m); err != nil {
		e.stats.luaErrors.Add(1)
		e.log.Error("kemi callback failed", "callback", kemiNames[k], "err", err, "call_id", callID(m))
	}
	if m.Dropped {
		e.stats.dropScript.Add(1)
		return true
	}
	return false
}

var kemiNames = [...]string{"received_route_callback", "pre_routing_callback", "onsend_route_callback"}

// RunOnSend runs the onsend callback for request m about to go to dst over proto from local with bytes out,
// when a worker is routing m and the script defines it; false means the script dropped the send. $snd(...)
// reads the destination meanwhile. Kamailio runs it for stateless forwards and tm branches alike.
func (m *Msg) RunOnSend(proto Proto, local *Listener, dst netip.AddrPort, out []byte) bool {
	if m.st() == nil || m.w == nil {
		return true // not on a worker (a DNS answer, a timer): Kamailio has no route context there either
	}
	kc, ok := m.st().(KemiCallbacks)
	if !ok || !kc.HasKemi(KemiOnSend) {
		return true
	}
	// the send is the worker's while the callback runs (a message is routed by one worker at a time), not
	// a field of every message
	w := m.w
	prevDrop, prevSnd, prevMsg := m.Dropped, w.snd, w.sndMsg
	m.Dropped = false
	w.snd, w.sndMsg = &SendInfo{Proto: proto, Local: local, Dst: dst, Buf: out}, m
	err := kc.RunKemi(KemiOnSend, m)
	drop := m.Dropped
	m.Dropped, w.snd, w.sndMsg = prevDrop, prevSnd, prevMsg
	if err != nil {
		m.E.stats.luaErrors.Add(1)
		m.E.log.Error("onsend callback failed", "err", err, "call_id", callID(m))
	}
	return !drop
}

// CallRouteFor runs script function fname with other as the current message, on the worker routing m
// (a module's route about another message than the one being routed: tm's branch failure route runs on
// a copy of the request while the worker routes a reply). other must not be routed elsewhere meanwhile.
func (m *Msg) CallRouteFor(other *Msg, fname string, args ...string) error {
	if m.st() == nil {
		return errNoState
	}
	other.w, other.gen, other.E = m.w, m.gen, m.E
	if other.Vars == nil {
		other.Vars = m.Vars
	}
	defer func() { other.w = nil }()
	return other.CallRouteArgs(fname, args...)
}
