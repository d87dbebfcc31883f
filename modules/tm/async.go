package tm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/siplua/siplua/engine"
)

// Suspending a transaction and continuing it later (Kamailio's t_suspend / t_continue, tmx): the request
// route parks the request in its transaction and ends; later (an HTTP answer, a queue message, another
// request) t_continue runs a route by name on a worker with the parked request, where t_relay adds branches
// to the same transaction, as in a failure route. Meanwhile the transaction holds a blind branch (Kamailio's
// add_blind_uac): a CANCEL ends it with 487, and without a continue it times out after fr_timer (or the
// t_set_fr value) with 408, running the failure route if one is armed.

// asyncTable finds suspended transactions by (index, label), Kamailio's $T(id_index) / $T(id_label).
type asyncTable struct {
	mu    sync.Mutex
	seq   uint32
	m     map[uint64]*suspended
	sweep int // size after which the next Suspend drops entries of transactions that ended
}

type suspended struct {
	x     *tx
	blind *branch
}

// asyncModKey keys the ids of a suspended request in engine.Msg.ModState.
const asyncModKey = "tm.async"

// asyncIDs is stored in the suspended request's message state, for $T(id_index)/$T(id_label).
type asyncIDs struct{ index, label uint32 }

func asyncKey(index, label uint32) uint64 { return uint64(index)<<32 | uint64(label) }

var (
	errNoSuspend    = errors.New("no suspended transaction with this index and label")
	errNotSuspended = errors.New("the transaction was already continued or has ended")
)

// Suspend parks request m in its transaction (created when it has none, as Kamailio's t_suspend does) and
// returns the transaction's index and label for Continue. The request route should end afterwards
// (KSR.x.exit()); the transaction owns the answer from now on.
func (t *TM) Suspend(m *engine.Msg) (index, label uint32, err error) {
	if !m.IsRequest() || m.IsAck() || m.Method() == "CANCEL" {
		return 0, 0, errors.New("t_suspend: only a request that creates a transaction can be suspended")
	}
	c := ctxOf(m)
	if c.route != routeRequest {
		return 0, 0, errors.New("t_suspend: only in the request route")
	}
	created := false
	if c.tx == nil {
		// as t_newtran, but the blind branch exists before the 100 Trying goes out: a CANCEL sent at once
		// must find the transaction suspended
		f, isNew := t.newTx(m)
		if !f.ok {
			return 0, 0, errors.New("t_suspend: no transaction")
		}
		if !isNew {
			t.retransmitted(m, f)
			return 0, 0, errors.New("t_suspend: a retransmission (its transaction exists)")
		}
		c.tx, created = f.x, true
	}
	x := c.tx
	fr := t.FrTimer
	x.mu.Lock()
	if x.final || x.removed {
		x.unlock()
		return 0, 0, errors.New("t_suspend: the transaction is already answered")
	}
	// the request as the route left it so far (R-URI, $du, headers, flags, AVPs), Kamailio's t_save_lumps
	x.req = detachReq(m)
	t.arm(x, c)
	if x.frMs > 0 {
		fr = int(x.frMs)
	}
	b := &branch{tx: x, idx: int32(len(x.branches)), uri: m.RURI(), frAt: t.timers.now().Add(ms(fr))}
	x.branches = append(x.branches, b)
	b.schedule(t.timers.now())
	if created && x.invite && t.AutoInv100 {
		x.reply = m.BuildReply(nil, 100, "trying -- your call is important to us", nil, "")
		x.status = 100
		x.queueReplyTo(m, x.reply)
	}
	x.unlock()
	m.Relayed = true // no 500 when the script ends: the transaction answers

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	label = binary.BigEndian.Uint32(rnd[:]) | 1
	a := &t.async
	a.mu.Lock()
	if a.m == nil {
		a.m, a.sweep = map[uint64]*suspended{}, 1024
	}
	if len(a.m) >= a.sweep {
		a.sweepLocked()
	}
	a.seq++
	index = a.seq
	a.m[asyncKey(index, label)] = &suspended{x: x, blind: b}
	a.mu.Unlock()
	m.SetModState(asyncModKey, &asyncIDs{index: index, label: label})
	return index, label, nil
}

// sweepLocked drops the entries of transactions that were never continued and have ended (timed out,
// cancelled). Called with a.mu held.
func (a *asyncTable) sweepLocked() {
	for k, s := range a.m {
		s.x.mu.Lock()
		gone := s.x.removed || s.x.final || s.blind.final
		s.x.unlock()
		if gone {
			delete(a.m, k)
		}
	}
	a.sweep = max(1024, 2*len(a.m))
}

// Continue resumes the transaction suspended as (index, label): the blind branch ends and route runs on a
// worker with the parked request, as a failure route (t_relay adds branches; t_reply answers). When the
// route neither relays nor answers, the caller gets 500, as after a failure route that does nothing.
func (t *TM) Continue(index, label uint32, route string) error {
	a := &t.async
	a.mu.Lock()
	s, ok := a.m[asyncKey(index, label)]
	if ok {
		delete(a.m, asyncKey(index, label))
	}
	a.mu.Unlock()
	if !ok {
		return errNoSuspend
	}
	x, b := s.x, s.blind
	x.mu.Lock()
	if x.removed || x.final || b.final || x.canceled {
		x.unlock()
		return errNotSuspended
	}
	b.final, b.dropped, b.status, b.reason = true, true, 408, "Request Timeout"
	if b.tmr.armed() {
		b.tmr.Stop()
	}
	x.inFailure = true // no aggregation while the route runs
	fm := x.req.Detach()
	c := &msgCtx{tx: x, route: routeFailure}
	fm.SetModState(ctxKey, c)
	n := len(x.branches)
	held := x.gen.Hold()
	if held {
		fm.UseGeneration(x.gen)
	}
	x.unlock()
	t.e.RunOnWorker(fm, func(fm *engine.Msg) {
		if held {
			defer x.gen.Release()
		}
		if err := fm.CallRouteArgs(route, "tmx:continue"); err != nil { // Kamailio passes the event name
			t.logger().Error("t_continue route failed", "route", route, "err", err, "call_id", callID(fm))
		}
		x.mu.Lock()
		defer x.unlock()
		x.inFailure = false
		x.req.AVPs = fm.AVPs
		added := len(x.branches) > n
		if added {
			x.legStart = int32(n)
		}
		if x.final {
			return
		}
		if !added {
			x.localReply(500, "I'm terribly sorry, server error occurred (1/TM)")
			return
		}
		t.complete(x)
	})
	return nil
}

// asyncPV is $T(id_index) / $T(id_label) of a suspended request, and of the routes run for its
// transaction; Null elsewhere.
func (t *TM) asyncPV(m *engine.Msg, arg string) engine.Value {
	ids, _ := m.ModState(asyncModKey).(*asyncIDs)
	if c, ok := m.ModState(ctxKey).(*msgCtx); ids == nil && ok && c.tx != nil {
		ids = t.idsOf(c.tx)
	}
	if ids == nil {
		return engine.Value{}
	}
	switch arg {
	case "id_index":
		return engine.IntVal(int64(ids.index))
	case "id_label":
		return engine.IntVal(int64(ids.label))
	}
	return engine.Value{}
}

// idsOf finds the ids of a suspended transaction (a route run for it, e.g. its failure route).
func (t *TM) idsOf(x *tx) *asyncIDs {
	a := &t.async
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.m {
		if s.x == x {
			return &asyncIDs{index: uint32(k >> 32), label: uint32(k)}
		}
	}
	return nil
}

// cancelSuspended answers a CANCEL of a suspended INVITE (nothing sent downstream but its blind branch) as
// Kamailio's e2e_cancel does when no branch can be cancelled: 487 "Request canceled" to the INVITE, then
// 200 "ok -- no more pending branches" to the CANCEL. false when x is not suspended (cancelTx handles it).
func (t *TM) cancelSuspended(m *engine.Msg, x *tx) bool {
	x.mu.Lock()
	if x.final || x.canceled || !onlyBlind(x) {
		x.unlock()
		return false
	}
	x.canceled = true
	for _, b := range x.branches {
		b.final, b.dropped, b.status = true, true, 487
		if b.tmr.armed() {
			b.tmr.Stop()
		}
	}
	x.localReply(487, "Request canceled")
	x.unlock() // the 487 goes out here, before the 200
	if err := m.SendReply(200, "ok -- no more pending branches"); err != nil {
		t.logger().Info("200 to CANCEL not sent", "err", err, "call_id", callID(m))
	}
	return true
}

// onlyBlind reports whether every pending branch of x is the blind branch of a suspension (never sent: no
// Via branch id) and there is one. Called with x.mu held.
func onlyBlind(x *tx) bool {
	pending := 0
	for _, b := range x.branches {
		if b.final {
			continue
		}
		if b.id != "" || b.out != nil || b.rs != nil {
			return false
		}
		pending++
	}
	return pending > 0
}
