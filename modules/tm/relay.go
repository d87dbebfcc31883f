package tm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// relay is t_relay: stateful forwarding of the request to its R-URI/$du and every appended branch, with
// proto (when set) and addr ("host:port", when set) overriding where the branches go.
func (t *TM) relay(m *engine.Msg, proto engine.Proto, addr string) int {
	r := t.relayOnce(m, proto, addr)
	if r >= 0 {
		m.Relayed = true // the transaction owns the answer now: no 500 after a later script error
	}
	return r
}

func (t *TM) relayOnce(m *engine.Msg, proto engine.Proto, addr string) int {
	if !m.IsRequest() { // raw: no sipgo parse on the relay path
		return -1
	}
	c := ctxOf(m)
	if c.route == routeFailure {
		return t.relayFailure(m, c, proto, addr)
	}
	if c.route != routeRequest {
		return -1
	}
	switch methodID(m) {
	case "ACK":
		if f := t.find(m, "INVITE"); f.ok {
			if f.x != nil {
				f.x.ack() // hop-by-hop ACK of a negative reply: ends here
			} // a completed transaction's record absorbs it as it is
			return 1
		}
		// end-to-end ACK of a 2xx: no transaction, relayed statelessly (RFC 3261 §16.7 step 10)
		if err := m.Forward(t.destURI(m, m.DstURI, m.RURI(), proto, addr)); err != nil {
			t.logger().Info("ACK not relayed", "err", err, "call_id", callID(m))
			return -1
		}
		return 1
	case "CANCEL":
		if f := t.find(m, "INVITE"); f.x != nil {
			if t.cancelSuspended(m, f.x) { // async.go
				return 1
			}
			t.cancelTx(m, f.x)
			return 1
		} else if f.ok {
			t.cancelDone(m) // the INVITE is answered already: nothing left to cancel
			return 1
		}
	}
	if _, ok := rawsip.ParseURI(m.RURI()); !ok {
		// a Request-URI the script set ($ru, seturi) that does not parse: not relayed, as in Kamailio
		t.logger().Info("request not relayed: its Request-URI does not parse", "ruri", m.RURI(), "call_id", callID(m))
		return -1
	}
	x := c.tx
	if x == nil {
		f, isNew := t.newTx(m)
		if !f.ok {
			return -1
		}
		if !isNew {
			t.retransmitted(m, f)
			return 0
		}
		x = f.x
		c.tx = x
		x.mu.Lock()
		if x.invite && t.AutoInv100 {
			x.reply = m.BuildReply(nil, 100, "trying -- your call is important to us", nil, "")
			x.status = 100
			x.queueReplyTo(m, x.reply)
		}
		x.unlock()
	}
	x.mu.Lock()
	x.req = detachReq(m)
	// the appended branches are consumed by this relay: a failure route starts without them, as Kamailio's
	// (its t_relay must not fork to them again; $T_branch_idx counts them once)
	x.req.Branches = nil
	t.arm(x, c)
	x.unlock()
	n, err := t.forwardBranches(x, m, c, proto, addr)
	x.mu.Lock()
	c.relayErr = nil
	if n == 0 && err != nil && x.allBranchesFailed() {
		c.relayErr = err // answered at the end of the route unless the script answers (RequestRouteDone)
	}
	x.unlock()
	if n == 0 {
		if err == nil { // every branch dropped by the branch route: nothing to answer for
			x.unregister()
		}
		return -1
	}
	return 1
}

// errUnresolvable marks a branch whose destination could not be resolved.
var errUnresolvable = errors.New("unresolvable destination")

// kill answers a new transaction whose every branch failed to go out, as Kamailio's kill_transaction does
// for a failed t_relay (TM_DELAYED_REPLY: at the end of the script, when the script did not answer): 478
// when the destination did not resolve, else 477, so the caller learns at once instead of retransmitting
// into a proxy that will never relay. Called with x.mu held.
func (t *TM) kill(x *tx, err error) {
	code, reason := 477, "Unfortunately error on sending to next hop occurred (477/TM)"
	if errors.Is(err, errUnresolvable) {
		code, reason = 478, "Unresolvable destination (478/TM)"
	}
	x.localReply(code, reason)
}

// arm copies what the script armed for the message into its transaction. Called with x.mu held.
func (t *TM) arm(x *tx, c *msgCtx) {
	if c.onFailure != "" {
		x.onFailure = c.onFailure
	}
	if c.onBranch != "" {
		x.onBranch = c.onBranch
	}
	if c.onReply != "" {
		x.onReply = c.onReply
	}
	if c.fr > 0 {
		x.frMs = int32(c.fr / time.Millisecond)
	}
	if c.frInv > 0 {
		x.frInvMs = int32(c.frInv / time.Millisecond)
	}
}

// armTx applies t_on_* called in a failure route to the transaction at once.
func (t *TM) armTx(m *engine.Msg) {
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok && c.tx != nil && c.route == routeFailure {
		c.tx.mu.Lock()
		t.arm(c.tx, c)
		c.tx.unlock()
	}
}

// relayFailure is t_relay in a failure route: new branches of the same transaction (serial forking).
func (t *TM) relayFailure(m *engine.Msg, c *msgCtx, proto engine.Proto, addr string) int {
	x := c.tx
	x.mu.Lock()
	if x.canceled || x.final {
		x.unlock()
		return -1
	}
	t.arm(x, c)
	x.unlock()
	if n, _ := t.forwardBranches(x, m, c, proto, addr); n == 0 {
		return -1
	}
	return 1
}

// destURI is where a branch goes: addr/proto when the script gave them, else $du, else the R-URI.
func (t *TM) destURI(m *engine.Msg, du, ruri string, proto engine.Proto, addr string) string {
	if addr != "" {
		u := "sip:" + addr
		if proto != engine.UDP && proto != engine.ProtoNone {
			u += ";transport=" + proto.String()
		}
		return u
	}
	u := du
	if u == "" {
		u = ruri
	}
	return u
}

// forwardBranches sends the message to its R-URI and appended branches, running the branch route for each;
// it returns how many were sent and the last send error.
func (t *TM) forwardBranches(x *tx, m *engine.Msg, c *msgCtx, proto engine.Proto, addr string) (int, error) {
	type dest struct {
		uri, du, path string
		flags         uint64
	}
	var one [1]dest // most requests have no appended branch: no allocation for them
	dests := one[:0]
	if len(m.Branches) > 0 {
		dests = make([]dest, 0, 1+len(m.Branches))
	}
	dests = append(dests, dest{m.RURI(), m.DstURI, m.Path, m.BFlags})
	for _, b := range m.Branches {
		dests = append(dests, dest{b.URI, b.DstURI, b.Path, b.Flags})
	}
	m.Branches = nil
	sent := 0
	var lastErr error
	x.mu.Lock()
	onBranch := x.onBranch
	x.unlock()
	origURI, origDU, origBF, origPath, origRoute := m.NewURI, m.DstURI, m.BFlags, m.Path, c.route
	for i, d := range dests {
		m.NewURI, m.DstURI, m.BFlags, m.Path = "", d.du, d.flags, d.path
		if d.uri != m.RURI() {
			m.NewURI = d.uri
		}
		mark := m.EditMark()
		if onBranch != "" {
			x.mu.Lock()
			c.branch = len(x.branches)
			x.unlock()
			c.route, c.tx = routeBranch, x
			m.Dropped = false
			if err := m.CallRoute(onBranch); err != nil {
				t.logger().Error("branch route failed", "route", onBranch, "err", err, "call_id", callID(m))
			}
			c.route = origRoute
			if m.Dropped {
				m.Dropped = false
				m.EditRestore(mark)
				continue
			}
		}
		if err := t.sendBranch(x, m, proto, addr); err != nil {
			t.logger().Info("branch not sent", "branch", i, "err", err, "call_id", callID(m))
			lastErr = err
		} else {
			sent++
		}
		m.EditRestore(mark)
	}
	m.NewURI, m.DstURI, m.BFlags, m.Path = origURI, origDU, origBF, origPath
	return sent, lastErr
}

// branchSrc keeps what a branch needs to be (re)built later: the request as the branch route left it, the
// further RFC 3263 targets to fail over to, and whether the transport was forced (no switch to TCP).
type branchSrc struct {
	msg    *engine.Msg // detached
	alts   []engine.Target
	forced bool
}

// sendBranch builds, registers and sends one branch of m, starting its timers. A destination given as an
// address (the common case) or a name in the DNS cache is sent at once; a name that must be looked up
// becomes a pending branch that the lookup's callback sends, so the worker does not wait for DNS.
func (t *TM) sendBranch(x *tx, m *engine.Msg, proto engine.Proto, addr string) error {
	uri := t.destURI(m, m.DstURI, m.RURI(), proto, addr)
	d, err := engine.ParseDest(uri)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnresolvable, err)
	}
	if proto != engine.ProtoNone {
		d.Proto = proto
	}
	forced := d.Proto != engine.ProtoNone
	if tg, ok := d.Literal(); ok {
		return t.launch(x, nil, m, tg, nil, forced)
	}
	ready := make(chan *branch, 1) // the callback may run before the pending branch exists
	ts, ok, err := t.e.Resolve(d, func(ts []engine.Target, err error) { t.resolved(<-ready, ts, err) })
	if err != nil {
		return err
	}
	if ok {
		var src *engine.Msg
		if len(ts) > 1 {
			src = m.Detach()
		}
		return t.launchSrc(x, nil, m, src, ts[0], ts[1:], forced)
	}
	x.mu.Lock()
	var b *branch
	if !x.removed {
		b = &branch{tx: x, idx: int32(len(x.branches)), uri: m.RURI(), rs: &branchSrc{msg: m.Detach(), forced: forced}}
		x.branches = append(x.branches, b)
	}
	x.unlock()
	ready <- b
	if b == nil {
		return fmt.Errorf("transaction is gone")
	}
	return nil
}

// resolved sends a pending branch once its destination is known, or ends it with 478 (Kamailio's reply for
// an unresolvable destination).
func (t *TM) resolved(b *branch, ts []engine.Target, err error) {
	if b == nil {
		return
	}
	b.tx.mu.Lock()
	rs := *b.rs // set when the pending branch was made; failover may clear b.rs later
	b.tx.unlock()
	if err != nil {
		t.logger().Info("branch destination not resolved", "err", err, "call_id", callID(rs.msg))
		t.branchFailed(b, 478, "Unresolvable destination")
		return
	}
	if err := t.launchSrc(b.tx, b, rs.msg, rs.msg, ts[0], ts[1:], rs.forced); err != nil {
		t.logger().Info("branch not sent", "err", err, "call_id", callID(rs.msg))
	}
}

func (t *TM) launch(x *tx, b *branch, m *engine.Msg, tg engine.Target, alts []engine.Target, forced bool) error {
	return t.launchSrc(x, b, m, nil, tg, alts, forced)
}

// launchSrc builds branch b (a new one when nil) of m for target tg, registers it and starts its timers
// under x.mu, then sends it with the lock released. src, when set, is kept for failover to alts.
func (t *TM) launchSrc(x *tx, b *branch, m, src *engine.Msg, tg engine.Target, alts []engine.Target, forced bool) error {
	x.mu.Lock()
	if x.removed {
		x.unlock()
		return fmt.Errorf("transaction is gone")
	}
	if b != nil && b.final { // ended (CANCEL) while its destination was being resolved
		x.unlock()
		return nil
	}
	sync := b == nil // sent from the route: a failure is t_relay's to report, not a reply's
	if b == nil {
		uri := m.RURI()
		if x.req != nil { // the transaction's copy of the request holds the same string: keep that one
			if u := x.req.RURI(); u == uri {
				uri = u
			}
		}
		b = &branch{tx: x, idx: int32(len(x.branches)), uri: uri}
		x.branches = append(x.branches, b)
	}
	if err := t.build(b, m, tg, forced); err != nil {
		if sync {
			b.final, b.dropped, b.status = true, true, 477
			x.unlock()
			return err
		}
		x.unlock()
		t.branchFailed(b, 477, "Unfortunately error on sending to next hop occurred")
		return err
	}
	if len(alts) > 0 && src != nil {
		b.rs = &branchSrc{msg: src, alts: alts, forced: forced}
	} else if b.rs != nil {
		b.rs.alts = nil
	}
	out, dst, local := b.out, b.dst, b.local
	x.unlock()
	if sync && !m.RunOnSend(dst.Proto, local, dst.Addr, out) { // the [kemi] onsend callback dropped it
		return t.onSendDropped(b)
	}
	return t.transmit(b, out, dst, local, sync)
}

// build makes the branch's request for target tg (a fresh Via branch, the socket for tg, TCP instead of UDP
// for a request bigger than udp_mtu unless the transport is forced), registers it and arms its timers.
// Called with x.mu held.
func (t *TM) build(b *branch, m *engine.Msg, tg engine.Target, forced bool) error {
	x := b.tx
	local := t.e.ListenerFor(m.Local, tg)
	if local == nil {
		return fmt.Errorf("no %s socket for %s", tg.Proto, tg.Addr)
	}
	var idBuf [64]byte // the branch id built in one allocation (the concatenation of formatted numbers took up to three)
	id := append(idBuf[:0], t.prefix...)
	id = strconv.AppendUint(id, t.seq.Add(1), 36)
	id = append(id, '.')
	id = strconv.AppendInt(id, int64(b.idx), 10)
	b.id = string(id)
	b.out = m.AppendRequest(make([]byte, 0, len(m.Buf)+256), local, tg.Proto, b.id, m.NewURI)
	if tg.Proto == engine.UDP && !forced && t.e.TooBigForUDP(len(b.out)) { // RFC 3261 §18.1.1
		tt := engine.Target{Proto: engine.TCP, Addr: tg.Addr}
		if tl := t.e.ListenerFor(m.Local, tt); tl != nil {
			tg, local = tt, tl
			b.out = m.AppendRequest(b.out[:0], local, tg.Proto, b.id, m.NewURI)
		}
	}
	b.dst, b.local = tg, local
	// registered before it is sent: a fast reply must find it (it waits for x.mu)
	t.client.put(b.id, b)
	now := t.timers.now()
	fr := ms(int(x.frMs))
	if fr == 0 {
		fr = ms(t.FrTimer)
	}
	b.frAt = now.Add(fr)
	b.retr = false
	if tg.Proto == engine.UDP {
		b.retr, b.retrIv = true, ms(t.T1)
		b.next = now.Add(b.retrIv)
	}
	b.schedule(now)
	return nil
}

// transmit sends a branch's request outside the transaction's lock; a send that fails at once or later (a
// TCP connection that cannot be made) fails over to the next target or ends the branch with 477.
// With sync (sent from the route), a failure with no target left is returned, not answered: t_relay
// reports it and the script decides, as in Kamailio.
func (t *TM) transmit(b *branch, out []byte, dst engine.Target, local *engine.Listener, sync bool) error {
	id := b.id
	var onErr func(error)
	if dst.Proto.Stream() { // only a queued stream (TCP, TLS, WS) message can fail later (UDP fails at once or never)
		onErr = func(err error) {
			t.logger().Info("branch send failed", "dst", dst.Addr.String(), "err", err)
			t.sendFailed(b, id, false)
		}
	}
	t.checkSend(b.tx)
	if err := t.e.SendNotify(dst.Proto, local, dst.Addr, out, onErr); err != nil {
		if t.sendFailed(b, id, sync) {
			return nil
		}
		return err
	}
	t.e.CountForwarded()
	return nil
}

// sendFailed handles a branch whose request (Via branch id) could not be sent: the next RFC 3263 target
// (true), or a local 477; with sync the branch is only taken out of the competition for the answer.
func (t *TM) sendFailed(b *branch, id string, sync bool) bool {
	x := b.tx
	x.mu.Lock()
	if x.removed || b.final || b.id != id || b.status > 0 {
		x.unlock()
		return false
	}
	nb := t.failover(x, b)
	var src *engine.Msg
	if nb != nil {
		src = nb.rs.msg
	}
	if nb != nil || sync {
		b.final, b.retr, b.dropped, b.status, b.reason = true, false, true, 477, "Unfortunately error on sending to next hop occurred"
		if b.tmr.armed() {
			b.tmr.Stop()
		}
		t.client.del(b.id)
	}
	x.unlock()
	if nb != nil {
		if t.forward(b, nb, src) {
			return true
		}
		// no further target could be sent either: b is answered as if failover had found none
		if !sync {
			t.failoverExhausted(b)
		}
		return false
	}
	if !sync {
		t.branchFailed(b, 477, "Unfortunately error on sending to next hop occurred")
	}
	return false
}

// allBranchesFailed reports whether no branch of x went out: each ended before it was sent. Called with
// x.mu held.
func (x *tx) allBranchesFailed() bool {
	for _, b := range x.branches {
		if !b.final || !b.dropped {
			return false
		}
	}
	return true
}

// branchFailed ends a branch that never reached its next hop with a local status, as if it had replied it.
func (t *TM) branchFailed(b *branch, code int, reason string) {
	x := b.tx
	x.mu.Lock()
	defer x.unlock()
	if b.final {
		return
	}
	b.final, b.retr, b.status, b.reason, b.reply = true, false, int32(code), reason, nil
	if b.tmr.armed() {
		b.tmr.Stop()
	}
	if b.id != "" {
		t.client.del(b.id)
	}
	t.complete(x)
}

// failover makes a new branch to the next RFC 3263 target of b (RFC 3263 §4.3: after a 503, a timeout
// without any reply, or a transport error), if b has one, and returns it (else nil). b's own answer stops
// competing for the final one: the next server's answer stands for the name (an earlier 408 would win over
// a later 404 of the same rank). Called with x.mu held; the caller has the new branch sent once the lock
// is released (forward, or an outForward send), which undoes this when no target can be sent.
func (t *TM) failover(x *tx, b *branch) *branch {
	if b.rs == nil || len(b.rs.alts) == 0 || x.canceled || x.final || x.removed {
		return nil
	}
	rs := b.rs
	b.rs = nil // one failover per branch: the new branch carries the rest of the list
	nb := t.nextTarget(x, b.uri, rs)
	if nb != nil {
		b.dropped = true
	}
	return nb
}

// nextTarget builds, registers and arms a branch for the first target of rs.alts that has a socket; the
// branch carries the rest of the list. Called with x.mu held.
func (t *TM) nextTarget(x *tx, uri string, rs *branchSrc) *branch {
	for len(rs.alts) > 0 {
		tg := rs.alts[0]
		nb := &branch{tx: x, idx: int32(len(x.branches)), uri: uri, rs: &branchSrc{msg: rs.msg, alts: rs.alts[1:], forced: rs.forced}}
		rs = nb.rs
		if err := t.build(nb, rs.msg, tg, rs.forced); err != nil {
			continue
		}
		x.branches = append(x.branches, nb)
		return nb
	}
	return nil
}

// forward sends failover branch nb of b with x.mu released. A send that fails at once ends nb (477, out of
// the competition) and tries the next target; it reports whether a branch went out (or nb ended
// otherwise meanwhile). A TCP send that fails later comes back through sendFailed.
// src is the request the branches are built from (for the log).
func (t *TM) forward(b, nb *branch, src *engine.Msg) bool {
	x := b.tx
	for nb != nil {
		cur, id, dst := nb, nb.id, nb.dst
		t.checkSend(x)
		err := t.e.SendNotify(dst.Proto, nb.local, dst.Addr, nb.out, func(err error) {
			t.logger().Info("branch send failed", "dst", dst.Addr.String(), "err", err)
			t.sendFailed(cur, id, false)
		})
		if err == nil {
			t.e.CountForwarded()
			t.logger().Info("failover to the next server", "dst", dst.Addr.String(), "proto", dst.Proto.String(), "call_id", callID(src))
			return true
		}
		x.mu.Lock()
		if nb.final || x.removed { // ended meanwhile (a CANCEL): nothing more to do for it
			x.unlock()
			return true
		}
		nb.final, nb.retr, nb.dropped, nb.status = true, false, true, 477
		if nb.tmr.armed() {
			nb.tmr.Stop()
		}
		t.client.del(nb.id)
		rs := nb.rs
		nb.rs = nil
		nb = t.nextTarget(x, b.uri, rs)
		x.unlock()
	}
	return false
}

// failoverExhausted runs when no failover target of b could be sent: b's own answer competes again and the
// transaction is completed, as if failover had found no target.
func (t *TM) failoverExhausted(b *branch) {
	x := b.tx
	x.mu.Lock()
	b.dropped = false
	t.complete(x)
	x.unlock()
}

// schedule arms the branch timer for the next retransmission or the timeout. Called with x.mu held.
func (b *branch) schedule(now mono) {
	at := b.frAt
	if b.retr && b.next.Before(at) {
		at = b.next
	}
	if b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP {
		if c := now.Add(b.retrIv); c.Before(at) {
			at = c
		}
	}
	d := max(at.Sub(now), time.Millisecond)
	b.tx.t.timers.start(&b.tmr, b, d)
}

// onTimer retransmits (timers A and E), resends a CANCEL, or times the branch out (timers B, F and
// Kamailio's fr_timer/fr_inv_timer) with a local 408.
func (b *branch) onTimer() {
	x := b.tx
	t := x.t
	x.mu.Lock()
	defer x.unlock()
	cancelling := b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP
	if x.removed || (b.final && !cancelling) {
		return
	}
	now := t.timers.now()
	if b.final { // ended locally (CANCEL before it rang): only the CANCEL is retransmitted
		b.cancelN++
		b.queueRequest(b.cancel, countNone)
		if b.cancelN < 10 {
			b.tmr.Reset(max(b.retrIv, time.Millisecond))
		}
		return
	}
	if !now.Before(b.frAt) {
		noReply := b.status == 0
		b.timeout()
		if noReply {
			t.queueFailover(x, b) // RFC 3263 §4.3: a server that never answered; the next one is tried
		}
		t.complete(x)
		return
	}
	if b.retr && !now.Before(b.next) {
		b.queueRequest(b.out, countNone)
		if x.invite {
			b.retrIv *= 2
		} else {
			b.retrIv = min(2*b.retrIv, ms(t.T2))
		}
		b.next = now.Add(b.retrIv)
	}
	if b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP {
		b.cancelN++
		b.queueRequest(b.cancel, countNone)
	}
	b.schedule(now)
}

// timeout ends a branch that got no final reply: a CANCEL when it rang, a local 408. Called with x.mu held.
func (b *branch) timeout() {
	if b.tx.invite && b.status >= 100 && b.cancel == nil {
		b.sendCancel()
	}
	b.final, b.timedOut, b.retr = true, true, false
	b.status, b.reason, b.reply = 408, "Request Timeout", nil
}

// sendCancel sends CANCEL on a branch that received a provisional reply (RFC 3261 §9.1). Called with x.mu
// held.
func (b *branch) sendCancel() {
	b.cancel = hopRequest(b.out, "CANCEL", "")
	b.retrIv = ms(b.tx.t.T1)
	if b.cancel == nil { // not built (a request tm did not make): nothing to send, counted all the same
		b.tx.t.e.CountForwarded()
		return
	}
	b.queueRequest(b.cancel, countForwarded) // sent, and counted, once x.mu is released
}

// sendACK acknowledges a negative final reply on the branch (RFC 3261 §17.1.1.3): to is the reply's To.
// Called with x.mu held.
func (b *branch) sendACK(to string) {
	b.queueRequest(hopRequest(b.out, "ACK", to), countNone)
}

// queueFailover fails b over to its next target, if it has one, the new branch's request going once x.mu
// is released. Called with x.mu held.
func (t *TM) queueFailover(x *tx, b *branch) {
	if nb := t.failover(x, b); nb != nil {
		x.queue(outMsg{kind: outForward, b: b, nb: nb, req: nb.rs.msg})
	}
}

// hopRequest builds a CANCEL or ACK for a request as sent: same Request-URI, top Via, Route, From, Call-ID
// and CSeq number, To as sent (CANCEL) or from the reply (ACK) (RFC 3261 §9.1, §17.1.1.3).
func hopRequest(out []byte, method, to string) []byte {
	var raw rawsip.Msg
	if err := rawsip.Scan(out, &raw); err != nil {
		return nil
	}
	s, e, ok := rawsip.RequestURI(out, &raw)
	if !ok {
		return nil
	}
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString(method)
	b.WriteByte(' ')
	b.Write(out[s:e])
	b.WriteString(" SIP/2.0\r\n")
	viaDone, mf := false, false
	for _, h := range raw.Hdrs {
		switch {
		case h.Is(out, "via"):
			if viaDone {
				continue
			}
			viaDone = true
			v := h.Value(out)
			b.WriteString("Via: ")
			b.Write(v[:rawsip.FirstValueEnd(v)])
			b.WriteString("\r\n")
		case h.Is(out, "max-forwards"):
			// Kamailio (reparse_invite) copies the INVITE's Max-Forwards as sent, not a fresh 70
			mf = true
			b.Write(out[h.Start:h.VEnd])
			b.WriteString("\r\n")
		case h.Is(out, "route"), h.Is(out, "from"), h.Is(out, "call-id"):
			b.Write(out[h.Start:h.VEnd])
			b.WriteString("\r\n")
		case h.Is(out, "to"):
			if to != "" {
				b.WriteString("To: ")
				b.WriteString(to)
			} else {
				b.Write(out[h.Start:h.VEnd])
			}
			b.WriteString("\r\n")
		case h.Is(out, "cseq"):
			// as Kamailio's build_local_reparse: the header as sent up to the method (name, number and
			// the white space after it, a TAB too), then the method
			v := h.Value(out)
			if i := bytes.IndexAny(v, " \t"); i > 0 {
				for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
					i++
				}
				b.Write(out[h.Start : int(h.VStart)+i])
			} else {
				b.WriteString("CSeq: ")
				b.Write(v)
				b.WriteByte(' ')
			}
			b.WriteString(method)
			b.WriteString("\r\n")
		}
	}
	if !mf {
		b.WriteString("Max-Forwards: 70\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// cancelTx handles a CANCEL for a pending INVITE transaction: 200 to the CANCEL, CANCEL on every branch
// that rang, and the branches that had no reply yet handled as cancel_b_method says (Kamailio's default 1:
// keep retransmitting, CANCEL once a provisional comes; the final reply comes from the branch). The
// answers go up through the usual aggregation; a local one (a timeout) becomes 487, as in Kamailio.
//
// The 200 for the CANCEL goes up after what cancelling sent up (a local 487 with cancel_b_method 0), in
// Kamailio's order (e2e_cancel answers the CANCEL once cancel_uacs is done), and before the CANCELs go
// down: whatever the callees answer to them (487, and the final reply that makes) can only follow it,
// however the workers are scheduled.
func (t *TM) cancelTx(m *engine.Msg, x *tx) {
	x.mu.Lock()
	n := len(x.outq)
	if !x.final && !x.canceled {
		x.canceled = true
		t.cancelBranches(x, nil)
		t.complete(x)
	}
	ok := m.BuildReply(nil, 200, "canceling", nil, "")
	if x.sending {
		m = m.Detach() // another goroutine makes the sends: it may do so after the worker recycled m
	}
	// upstream replies decided by cancelling first, then the 200, then the rest (the CANCELs down)
	added := slices.Clone(x.outq[n:])
	x.outq = x.outq[:n]
	for _, o := range added {
		if o.kind == outReply {
			x.queue(o)
		}
	}
	x.queue(outMsg{kind: outReply, req: m, data: ok, code: 200, count: countLocal, logErr: true})
	for _, o := range added {
		if o.kind != outReply {
			x.queue(o)
		}
	}
	x.unlock() // sends what cancelling queued
	t.checkSend(x)
	m.Replied = true
}

// cancelDone answers a CANCEL whose INVITE transaction completed and is waiting out wt_timer as a record:
// 200, as cancelTx answers one whose INVITE already had its final reply.
func (t *TM) cancelDone(m *engine.Msg) {
	ok := m.BuildReply(nil, 200, "canceling", nil, "")
	if err := t.e.SendReplyBytes(m, ok); err != nil {
		t.logger().Info("reply not sent upstream", "code", 200, "err", err, "call_id", callID(m))
	} else {
		t.e.CountLocal(200)
	}
	m.Replied = true
}

// cancelBranches cancels every pending branch except keep (Kamailio's cancel_uacs with cancel_b_method).
// Called with x.mu held.
func (t *TM) cancelBranches(x *tx, keep *branch) {
	now := t.timers.now()
	for _, b := range x.branches {
		if b == keep || b.final || b.cancel != nil {
			continue
		}
		if b.status >= 100 || t.CancelBMethod == 2 {
			b.retr = false
			b.sendCancel()
			b.schedule(now)
			continue
		}
		if t.CancelBMethod == 1 {
			// keep retransmitting: the CANCEL goes once a provisional arrives (branchReply), else the
			// branch times out
			b.cancelWanted = true
			continue
		}
		b.final, b.retr, b.cancelWanted = true, false, true
		b.status, b.reason, b.reply = 487, "Request Terminated", nil
	}
}

func (b *branch) fire()             { b.onTimer() } // its timer (timers.go)
func (b *branch) timerSet() *timers { return &b.tx.t.timers }

// cancelAnswered in branch.cancelN stops the CANCEL's retransmissions (sent fewer than 10 times).
const cancelAnswered = 1 << 14
