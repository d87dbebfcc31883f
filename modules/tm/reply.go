package tm

import (
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// OnReply takes every reply to a branch of a transaction (engine.ReplyHook); other replies are left to the
// engine's stateless relay (e.g. a 2xx retransmitted after the transaction ended).
func (t *TM) OnReply(m *engine.Msg) bool {
	// The branch of the top Via, read on the raw bytes: every reply comes here, and a full parse for one
	// parameter would cost more than the rest of the match.
	i := m.Raw.Find(m.Buf, "via")
	if i < 0 {
		return false
	}
	raw := m.Raw.Hdrs[i].Value(m.Buf)
	raw = raw[:rawsip.FirstValueEnd(raw)]
	// Parsed from a string view of the received bytes (no copy: one allocation per reply): v and the
	// branch id are only used for the lookup below and do not outlive it; m.Buf is not written meanwhile.
	v, err := engine.ParseVia(rawsip.View(raw))
	if err != nil {
		return false
	}
	id, _, _, _ := rawsip.Param(v.Params, "branch")
	b, ok := t.client.get(id)
	if !ok {
		if d, db, ok := t.wait.client(id, t.timers.now()); ok {
			t.doneReply(m, d, db)
			return true
		}
		return false
	}
	x := b.tx
	code := m.StatusCode()
	if methodID(m) == "CANCEL" {
		x.mu.Lock()
		b.cancelN = cancelAnswered // answered: stop retransmitting it
		x.unlock()
		return true
	}
	if !strings.EqualFold(m.Method(), x.method) {
		return true
	}
	// Both run on the transaction's script generation, whatever reloads came since it was created.
	if x.gen.Hold() {
		defer x.gen.Release()
		m.UseGeneration(x.gen)
	}
	// Kamailio runs the core reply route first, then the transaction's onreply route; either may drop a
	// provisional reply.
	c := &msgCtx{tx: x, route: routeReply, branch: int(b.idx), code: code, reason: m.Reason()}
	m.SetModState(ctxKey, c)
	if err := m.RunReplyRoute(); err != nil {
		t.logger().Error("reply route failed", "err", err, "call_id", callID(m))
	}
	x.mu.Lock()
	onReply := x.onReply
	x.unlock()
	if onReply != "" && !m.Dropped {
		if err := m.CallRoute(onReply); err != nil {
			t.logger().Error("onreply route failed", "route", onReply, "err", err, "call_id", callID(m))
		}
	}
	if m.Dropped && code < 200 {
		return true
	}
	t.runBranchFailure(x, b, m, code) // more.go
	x.mu.Lock()
	t.branchReply(x, b, m, code)
	x.unlock()
	return true
}

// doneReply handles a reply on a branch of a completed transaction, now a record in the wait store: a final
// reply the callee sent again. The reply route and the transaction's onreply route run as for a live
// transaction (on a stand-in without the request: $T_req and the like are empty there); then a 2xx of an
// INVITE goes upstream again (its ACK is end-to-end) and a negative one is ACKed again; anything else ends
// here, as a live transaction's would.
func (t *TM) doneReply(m *engine.Msg, d doneTx, db doneBranch) {
	if methodID(m) == "CANCEL" || !strings.EqualFold(m.Method(), d.method) {
		return // the answer to a CANCEL long answered, or not a reply to this request
	}
	code := m.StatusCode()
	if d.gen.Hold() {
		defer d.gen.Release()
		m.UseGeneration(d.gen)
	}
	sx := &tx{t: t, key: d.key, method: d.method, invite: d.invite, final: true, removed: true,
		status: int32(d.status), onReply: d.onReply}
	m.SetModState(ctxKey, &msgCtx{tx: sx, route: routeReply, branch: db.idx, code: code, reason: m.Reason()})
	if err := m.RunReplyRoute(); err != nil {
		t.logger().Error("reply route failed", "err", err, "call_id", callID(m))
	}
	if d.onReply != "" && !m.Dropped {
		if err := m.CallRoute(d.onReply); err != nil {
			t.logger().Error("onreply route failed", "route", d.onReply, "err", err, "call_id", callID(m))
		}
	}
	switch {
	case !d.invite || code < 200:
	case code < 300:
		if err := t.e.RelayReply(m); err != nil {
			t.logger().Info("reply not relayed", "err", err, "call_id", callID(m))
		}
	case db.out != nil:
		var local *engine.Listener
		if ls := t.e.Listeners(); db.listener >= 0 && db.listener < len(ls) {
			local = ls[db.listener]
		}
		if ack := hopRequest(db.out, "ACK", toValue(m)); ack != nil {
			_ = t.e.Send(db.dst.Proto, local, db.dst.Addr, ack)
		}
	}
}

// branchReply updates a branch with a reply and relays what RFC 3261 §16.7 says to. Called with x.mu held.
func (t *TM) branchReply(x *tx, b *branch, m *engine.Msg, code int) {
	defer func() { b.replied = true }()
	if b.final && code < 200 && b.cancelWanted && b.cancel == nil {
		// late provisional on a branch ended locally by a CANCEL: cancel it now (RFC 3261 §9.1)
		b.sendCancel()
		b.schedule(t.timers.now())
		return
	}
	if b.final && !b.timedOut {
		// a retransmitted final reply: ACK a negative one again, relay a 2xx again (its ACK is end-to-end)
		if code >= 300 && x.invite {
			b.sendACK(toValue(m))
		} else if code >= 200 && code < 300 && x.invite {
			t.relayUp(x, m, code)
		}
		return
	}
	now := t.timers.now()
	if code < 200 {
		if b.final { // late provisional on a branch that timed out: its CANCEL is already under way
			return
		}
		b.status = max(b.status, int32(code))
		if x.invite {
			b.retr = false
			if (b.cancelWanted || x.canceled) && b.cancel == nil {
				b.sendCancel() // a branch cancelled before it answered (cancel_b_method 1)
			}
			frInv := ms(int(x.frInvMs))
			if frInv == 0 {
				frInv = ms(t.FrInvTimer)
			}
			b.frAt = earliest(now.Add(frInv), x.created.Add(ms(t.MaxInvLifetime)))
		} else if b.retr {
			b.retrIv = ms(t.T2)
			b.next = now.Add(b.retrIv)
			b.frAt = earliest(b.frAt, x.created.Add(ms(t.MaxNonInvLifetime)))
		}
		b.schedule(now)
		if code > 100 && !x.final && !x.canceled { // Kamailio drops a provisional of a cancelled branch
			t.relayUp(x, m, code)
		}
		return
	}
	if b.final { // a real answer after the local timeout or cancel: ACK it, a late 2xx still goes up
		if x.invite && code >= 300 {
			b.sendACK(toValue(m))
		} else if code < 300 && x.invite {
			t.relayUp(x, m, code)
		}
		return
	}
	b.final, b.retr, b.status, b.reason = true, false, int32(code), m.Reason()
	if b.tmr.armed() && b.cancel == nil {
		b.tmr.Stop()
	}
	if code < 300 {
		if x.invite || !x.final {
			t.relayUp(x, m, code)
		}
		// A 2xx ends the branch for good: no retransmission, CANCEL or hop-by-hop ACK will be built from
		// the request as sent, so it is not kept alive for the transaction's wait time (a third of a
		// completed call's live heap).
		b.out = nil
		if x.invite {
			t.cancelBranches(x, b)
		}
		t.complete(x)
		return
	}
	if x.invite {
		b.sendACK(toValue(m))
	}
	out, _, err := m.AppendRelayedReply(nil)
	if err != nil {
		t.logger().Info("reply not relayable", "err", err, "call_id", callID(m))
		out = nil
	}
	b.reply = out
	if code >= 600 {
		t.cancelBranches(x, b)
	}
	if code == 503 {
		t.queueFailover(x, b) // RFC 3263 §4.3: a 503 sends the request to the next server of the name
	}
	t.complete(x)
}

// relayUp sends a received reply upstream without its top Via. Called with x.mu held: the reply goes when
// it is released.
func (t *TM) relayUp(x *tx, m *engine.Msg, code int) {
	out, _, err := m.AppendRelayedReply(nil)
	if err != nil {
		t.logger().Info("reply not relayed", "err", err, "call_id", callID(m))
		return
	}
	if x.final && code >= 200 { // another 2xx of a forked INVITE: relayed, the first one stays the reply
		x.queue(outMsg{kind: outReply, req: x.req, data: out, code: code, count: countRelayed})
		return
	}
	x.sendUpstream(out, code, true)
}

func earliest(a, b mono) mono {
	if b.Before(a) {
		return b
	}
	return a
}

func toValue(m *engine.Msg) string {
	s, _ := m.Header("to")
	return s
}

// complete checks whether every branch has its final answer; if so and nothing went upstream yet, it runs
// the failure route or sends the best reply. Called with x.mu held.
func (t *TM) complete(x *tx) {
	if x.inFailure || x.removed {
		return
	}
	for _, b := range x.branches {
		if !b.final {
			return
		}
	}
	if x.final {
		return
	}
	best := t.best(x)
	if best == nil {
		return
	}
	if x.onFailure != "" && best.status >= 300 {
		fname := x.onFailure
		x.onFailure = ""
		x.inFailure = true
		t.runFailure(x, fname, best)
		return
	}
	t.sendBest(x, best)
}

// sendBest sends the chosen final reply upstream. A local one (a timeout) of a cancelled transaction goes
// up as 487, as in Kamailio (relay_reply: faked reply of a T_CANCELED transaction). Called with x.mu held.
func (t *TM) sendBest(x *tx, b *branch) {
	if b.reply != nil {
		if t.aggregateAuth(x, b) {
			return
		}
		if b.status == 503 && t.Remap503 {
			x.localReply(500, "Service Unavailable") // Kamailio's text: error_text(503)
			return
		}
		x.sendUpstream(b.reply, int(b.status), true)
		return
	}
	if x.canceled && b.status >= 300 {
		x.localReply(487, "Request Terminated")
		return
	}
	x.localReply(int(b.status), b.reason)
}

// prio ranks a final reply for the answer upstream as Kamailio's get_prio does (lower wins): 2xx, then
// 6xx, 3xx, 4xx, 5xx, then unknown classes; within a class the lowest code (480 before 486), and in 4xx
// the ones a client can act on (401, 407, 415, 420, 484) before the others.
func prio(code int) int {
	class, xx := code/100, code%100
	switch class {
	case 2:
		return xx
	case 6:
		return 1000 + xx
	case 3, 5:
		return class*1000 + xx
	case 4:
		switch xx {
		case 1, 7, 15, 20, 84:
			return 4000 + xx
		}
		return 4100 + xx
	}
	return 10000 + code
}

// best picks the reply to send upstream among the branches whose replies were not dropped (RFC 3261 §16.7
// step 6, with Kamailio's priorities: prio); the first branch among equals.
func (t *TM) best(x *tx) *branch {
	var best *branch
	for _, b := range x.branches {
		if b.dropped {
			continue
		}
		if best == nil || prio(int(b.status)) < prio(int(best.status)) {
			best = b
		}
	}
	return best
}

// runFailure queues the failure route on a worker with a copy of the transaction's request; whatever the
// route does not answer or relay gets the best reply afterwards. Called with x.mu held.
func (t *TM) runFailure(x *tx, fname string, best *branch) {
	fm := x.req.Detach()
	c := &msgCtx{tx: x, route: routeFailure, code: int(best.status), reason: best.reason, pickedReplied: best.replied}
	fm.SetModState(ctxKey, c)
	n := len(x.branches)
	// on the generation that created the transaction (held for the job, though the transaction holds it too)
	held := x.gen.Hold()
	if held {
		fm.UseGeneration(x.gen)
	}
	t.e.RunOnWorker(fm, func(fm *engine.Msg) {
		if held {
			defer x.gen.Release()
		}
		if err := fm.CallRoute(fname); err != nil {
			t.logger().Error("failure route failed", "route", fname, "err", err, "call_id", callID(fm))
		}
		x.mu.Lock()
		defer x.unlock()
		x.inFailure = false
		added := len(x.branches) > n
		if !added {
			x.onFailure = "" // armed again without a new branch: nothing more can fail
		}
		x.req.AVPs = fm.AVPs // AVPs belong to the transaction (t_next_contacts pops them)
		mode := t.FailureReplyMode
		if c.dropMode > 0 {
			mode = int(c.dropMode) - 1
		}
		dropped := t.dropReplies(x, mode, n, added)
		if added {
			x.legStart = int32(n)
		}
		if x.final {
			return
		}
		if dropped && !added {
			// Kamailio's branches_failed: the replies are gone and nothing new was tried
			x.localReply(500, "I'm terribly sorry, server error occurred (1/TM)")
			return
		}
		t.complete(x)
	})
}

// dropReplies applies failure_reply_mode after a failure route over the n branches that existed when it
// started (Kamailio t_reply.c): 1 drops them all, 2 those of the step that just failed, 3 all of them when
// the route added branches. Called with x.mu held.
func (t *TM) dropReplies(x *tx, mode, n int, added bool) bool {
	if mode == 0 || mode == 3 && !added {
		return false
	}
	i := 0
	if mode == 2 {
		i = min(int(x.legStart), n)
	}
	for ; i < n; i++ {
		x.branches[i].dropped = true
	}
	return true
}
