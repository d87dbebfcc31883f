package tm

import (
	"bytes"
	"errors"
	"fmt"
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
	if m.Req == nil {
		return -1
	}
	c := ctxOf(m)
	if c.route == routeFailure {
		return t.relayFailure(m, c, proto, addr)
	}
	if c.route != routeRequest {
		return -1
	}
	switch m.Method() {
	case "ACK":
		if x := t.lookup(m, "INVITE"); x != nil {
			x.ack() // hop-by-hop ACK of a negative reply: ends here
			return 1
		}
		// end-to-end ACK of a 2xx: no transaction, relayed statelessly (RFC 3261 §16.7 step 10)
		if err := m.Forward(t.destURI(m, m.DstURI, m.RURI(), proto, addr)); err != nil {
			t.logger().Info("ACK not relayed", "err", err, "call_id", callID(m))
			return -1
		}
		return 1
	case "CANCEL":
		if x := t.lookup(m, "INVITE"); x != nil {
			t.cancelTx(m, x)
			return 1
		}
	}
	x := c.tx
	if x == nil {
		var isNew bool
		x, isNew = t.newTx(m)
		if x == nil {
			return -1
		}
		if !isNew {
			x.retransmitted(m)
			return 0
		}
		c.tx = x
		x.mu.Lock()
		if x.invite && t.AutoInv100 {
			x.reply = m.BuildReply(nil, 100, "trying -- your call is important to us", nil, "")
			x.status = 100
			_ = t.e.SendReplyBytes(m, x.reply)
		}
		x.mu.Unlock()
	}
	x.mu.Lock()
	x.req = m.Detach()
	x.req.Tx = nil
	t.arm(x, c)
	x.mu.Unlock()
	n, err := t.forwardBranches(x, m, c, proto, addr)
	x.mu.Lock()
	x.relayErr = nil
	if n == 0 && err != nil && len(x.branches) == 0 {
		x.relayErr = err // answered at the end of the route unless the script answers (RequestRouteDone)
	}
	x.mu.Unlock()
	if n == 0 {
		if err == nil {
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
		x.fr = c.fr
	}
	if c.frInv > 0 {
		x.frInv = c.frInv
	}
}

// armTx applies t_on_* called in a failure route to the transaction at once.
func (t *TM) armTx(m *engine.Msg) {
	if c, ok := m.Tx.(*msgCtx); ok && c.tx != nil && c.route == routeFailure {
		c.tx.mu.Lock()
		t.arm(c.tx, c)
		c.tx.mu.Unlock()
	}
}

// relayFailure is t_relay in a failure route: new branches of the same transaction (serial forking).
func (t *TM) relayFailure(m *engine.Msg, c *msgCtx, proto engine.Proto, addr string) int {
	x := c.tx
	x.mu.Lock()
	if x.canceled || x.final {
		x.mu.Unlock()
		return -1
	}
	t.arm(x, c)
	x.mu.Unlock()
	if n, _ := t.forwardBranches(x, m, c, proto, addr); n == 0 {
		return -1
	}
	return 1
}

// destURI is where a branch goes: addr/proto when the script gave them, else $du, else the R-URI.
func (t *TM) destURI(m *engine.Msg, du, ruri string, proto engine.Proto, addr string) string {
	if addr != "" {
		u := "sip:" + addr
		if proto == engine.TCP {
			u += ";transport=tcp"
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
		uri, du string
		flags   uint64
	}
	dests := make([]dest, 0, 1+len(m.Branches))
	dests = append(dests, dest{m.RURI(), m.DstURI, m.BFlags})
	for _, b := range m.Branches {
		dests = append(dests, dest{b.URI, b.DstURI, b.Flags})
	}
	m.Branches = nil
	sent := 0
	var lastErr error
	x.mu.Lock()
	onBranch := x.onBranch
	x.mu.Unlock()
	origURI, origDU, origBF, origRoute := m.NewURI, m.DstURI, m.BFlags, c.route
	for i, d := range dests {
		m.NewURI, m.DstURI, m.BFlags = "", d.du, d.flags
		if d.uri != m.RURI() {
			m.NewURI = d.uri
		}
		mark := m.EditMark()
		if onBranch != "" {
			x.mu.Lock()
			c.branch = len(x.branches)
			x.mu.Unlock()
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
	m.NewURI, m.DstURI, m.BFlags = origURI, origDU, origBF
	return sent, lastErr
}

// sendBranch builds, registers and sends one branch of m, starting its timers.
func (t *TM) sendBranch(x *tx, m *engine.Msg, proto engine.Proto, addr string) error {
	uri := t.destURI(m, m.DstURI, m.RURI(), proto, addr)
	tg, err := t.e.ResolveURI(uri)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnresolvable, err)
	}
	if proto != engine.ProtoNone {
		tg.Proto = proto
	}
	local := t.e.ListenerFor(m.Local, tg)
	if local == nil {
		return fmt.Errorf("no %s socket for %s", tg.Proto, tg.Addr)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.removed {
		return fmt.Errorf("transaction is gone")
	}
	b := &branch{tx: x, idx: len(x.branches), uri: m.RURI(), dst: tg, local: local}
	b.id = t.prefix + strconv.FormatUint(t.seq.Add(1), 36) + "." + strconv.Itoa(b.idx)
	b.out = m.AppendRequest(make([]byte, 0, len(m.Buf)+256), local, tg.Proto, b.id, m.NewURI)
	// registered before it is sent: a fast reply must find it (it waits for x.mu)
	t.client.put(b.id, b)
	if err := t.e.Send(tg.Proto, local, tg.Addr, b.out); err != nil {
		t.client.del(b.id)
		return err
	}
	t.e.CountForwarded()
	x.branches = append(x.branches, b)
	now := time.Now()
	fr := x.fr
	if fr == 0 {
		fr = ms(t.FrTimer)
	}
	b.frAt = now.Add(fr)
	if tg.Proto == engine.UDP {
		b.retr, b.retrIv = true, ms(t.T1)
		b.next = now.Add(b.retrIv)
	}
	b.schedule(now)
	return nil
}

// schedule arms the branch timer for the next retransmission or the timeout. Called with x.mu held.
func (b *branch) schedule(now time.Time) {
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
	if b.timer == nil {
		b.timer = b.tx.t.timers.afterFunc(d, b.onTimer)
	} else {
		b.timer.Reset(d)
	}
}

// onTimer retransmits (timers A and E), resends a CANCEL, or times the branch out (timers B, F and
// Kamailio's fr_timer/fr_inv_timer) with a local 408.
func (b *branch) onTimer() {
	x := b.tx
	t := x.t
	x.mu.Lock()
	defer x.mu.Unlock()
	cancelling := b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP
	if x.removed || (b.final && !cancelling) {
		return
	}
	now := time.Now()
	if b.final { // ended locally (CANCEL before it rang): only the CANCEL is retransmitted
		b.cancelN++
		_ = t.e.Send(b.dst.Proto, b.local, b.dst.Addr, b.cancel)
		if b.cancelN < 10 {
			b.timer.Reset(max(b.retrIv, time.Millisecond))
		}
		return
	}
	if !now.Before(b.frAt) {
		b.timeout()
		t.complete(x)
		return
	}
	if b.retr && !now.Before(b.next) {
		_ = t.e.Send(b.dst.Proto, b.local, b.dst.Addr, b.out)
		if x.invite {
			b.retrIv *= 2
		} else {
			b.retrIv = min(2*b.retrIv, ms(t.T2))
		}
		b.next = now.Add(b.retrIv)
	}
	if b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP {
		b.cancelN++
		_ = t.e.Send(b.dst.Proto, b.local, b.dst.Addr, b.cancel)
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
	_ = b.tx.t.e.Send(b.dst.Proto, b.local, b.dst.Addr, b.cancel)
	b.tx.t.e.CountForwarded()
}

// sendACK acknowledges a negative final reply on the branch (RFC 3261 §17.1.1.3): to is the reply's To.
func (b *branch) sendACK(to string) {
	ack := hopRequest(b.out, "ACK", to)
	_ = b.tx.t.e.Send(b.dst.Proto, b.local, b.dst.Addr, ack)
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
	viaDone := false
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
			v := h.Value(out)
			n := v
			if i := bytes.IndexAny(v, " \t"); i >= 0 {
				n = v[:i]
			}
			b.WriteString("CSeq: ")
			b.Write(n)
			b.WriteByte(' ')
			b.WriteString(method)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	return b.Bytes()
}

// cancelTx handles a CANCEL for a pending INVITE transaction: 200 to the CANCEL, CANCEL on every branch
// that rang, a local 487 for branches that never answered (Kamailio's default cancel_b_method), the 487s
// relayed through the usual aggregation.
func (t *TM) cancelTx(m *engine.Msg, x *tx) {
	if err := m.SendReply(200, "canceling"); err != nil {
		t.logger().Info("200 to CANCEL not sent", "err", err, "call_id", callID(m))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.final || x.canceled {
		return
	}
	x.canceled = true
	t.cancelBranches(x, nil)
	t.complete(x)
}

// cancelBranches cancels every pending branch except keep. Called with x.mu held.
func (t *TM) cancelBranches(x *tx, keep *branch) {
	for _, b := range x.branches {
		if b == keep || b.final || b.cancel != nil {
			continue
		}
		if b.status >= 100 {
			b.retr = false
			b.sendCancel()
			b.schedule(time.Now())
			continue
		}
		b.final, b.retr, b.cancelWanted = true, false, true
		b.status, b.reason, b.reply = 487, "Request Terminated", nil
	}
}
