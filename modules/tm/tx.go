package tm

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

type routeKind uint8

const (
	routeRequest routeKind = iota
	routeFailure
	routeBranch
	routeReply
)

// ctxKey keys tm's state for a message (msgCtx) in engine.Msg.ModState.
const ctxKey = "tm"

// msgCtx is tm's state for one message (engine.Msg.ModState(ctxKey)): the routes the script armed, timers
// it set, and in failure/branch/onreply routes the transaction and the branch or reply the route is about.
type msgCtx struct {
	tx                           *tx
	branch                       int
	code                         int
	reason                       string
	onFailure, onBranch, onReply string
	fr, frInv                    time.Duration
	relayErr                     error // t_relay sent no branch because of this: the caller is answered at route end
	route                        routeKind
	replied                      bool  // t_reply in a failure route
	pickedReplied                bool  // failure route: the picked branch had a reply before this one (t_branch_replied)
	dropMode                     int32 // t_drop_replies in a failure route: failure_reply_mode + 1 (0 unset)
}

func ctxOf(m *engine.Msg) *msgCtx {
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok {
		return c
	}
	c := &msgCtx{}
	m.SetModState(ctxKey, c)
	return c
}

// tx is a server transaction with its client branches. mu guards everything in it and in its branches.
// Nothing is sent with mu held: sends are queued in outq and made by unlock (send.go).
type tx struct {
	mu      sync.Mutex
	t       *TM
	key     string
	req     *engine.Msg // the request as relayed (detached): local replies, failure routes, CANCEL/ACK
	method  string
	created mono // on the timers' clock
	// gen is the script generation that created the transaction: its failure, branch and onreply routes
	// run there even after a reload. Held from creation until the transaction is removed.
	gen *engine.Generation

	reply    []byte // the last reply sent upstream, re-sent for a retransmitted request
	status   int32  // its status code (0: none yet)
	legStart int32  // first branch of the current serial-forking step (Kamailio's TM_UAC_FLAG_FB)

	branches  []*branch
	onFailure string
	onBranch  string
	onReply   string
	// frMs, frInvMs: t_set_fr's timers for the branches (milliseconds, 0 = the module's)
	frMs, frInvMs int32
	tmr           timer // upstream: final reply retransmission (timer G/H) then the wait before removal
	retrUntil     mono

	outq []outMsg // sends decided under mu, not made yet (send.go); its array comes from TM.outPool

	// The flags sit together, without padding between them: a completed transaction stays wt_timer long.
	invite    bool
	final     bool // a final reply went upstream
	acked     bool
	canceled  bool
	inFailure bool // a failure route is queued or running
	removed   bool
	waiting   bool // completed: waits out wt_timer, and becomes a record once its branches are done too
	sending   bool // a goroutine is making outq's sends
	// retrN counts the retransmissions of a negative INVITE reply (timer G) plus one, 0 when none is due:
	// the interval is T1 doubled that many times less one, at most T2 (retrInterval).
	retrN uint8
}

// branch is a client transaction: one destination of the request.
type branch struct {
	tx     *tx
	idx    int32  // its index in tx.branches
	status int32  // highest status received (0 none), or the local one (408, 487)
	id     string // Via branch
	uri    string
	dst    engine.Target
	local  *engine.Listener
	out    []byte // the request as sent
	reason string
	reply  []byte // final reply as it would go upstream (nil for a local one)

	tmr    timer
	retrIv time.Duration
	next   mono       // next retransmission
	frAt   mono       // when the branch times out
	cancel []byte     // CANCEL sent on this branch
	rs     *branchSrc // pending DNS lookup or failover targets (relay.go); nil for most branches

	// The flags sit together, without padding between them.
	final    bool
	timedOut bool
	dropped  bool // its reply no longer competes for the final answer (failure_reply_mode)
	// replied: a reply was handled on the branch. Set once the reply is handled, as Kamailio's F_RB_REPLIED:
	// a failure route run by the branch's own final reply sees it unset unless a provisional came first.
	replied      bool
	retr         bool  // retransmitting the request (UDP, no reply yet)
	cancelWanted bool  // cancel once a provisional arrives
	cancelN      int16 // CANCEL retransmissions so far (cancelAnswered: stop)
}

// serverKey is the RFC 3261 §17.2.3 key of a request: top Via branch, sent-by and method (ACK and CANCEL
// look up their INVITE with method "INVITE"); for an RFC 2543 request without the magic cookie, Call-ID,
// From tag, CSeq number, Request-URI and the top Via stand in (RFC 3261 §17.2.3 fallback).
func serverKey(m *engine.Msg, method string) (string, bool) {
	// The RFC 3261 key comes from the raw top Via: every stateless reply asks whether a transaction
	// exists (sl's send_reply, registrar's 200), and a full parse per request for that would cost more
	// than the rest of the lookup.
	if i := m.Raw.Find(m.Buf, "via"); i >= 0 {
		raw := m.Raw.Hdrs[i].Value(m.Buf)
		raw = raw[:rawsip.FirstValueEnd(raw)]
		// Parsed from a view of the received bytes (no copy): the key below copies what it keeps.
		if rv, err := engine.ParseVia(rawsip.View(raw)); err == nil {
			if b, _, _, _ := rawsip.Param(rv.Params, "branch"); strings.HasPrefix(b, "z9hG4bK") {
				var sb strings.Builder
				sb.Grow(len(b) + len(rv.Host) + len(method) + 10)
				sb.WriteString(b)
				sb.WriteByte(0)
				for i := 0; i < len(rv.Host); i++ { // lower case, without a string for it
					c := rv.Host[i]
					if 'A' <= c && c <= 'Z' {
						c += 'a' - 'A'
					}
					sb.WriteByte(c)
				}
				sb.WriteByte(':')
				var pb [20]byte
				sb.Write(strconv.AppendInt(pb[:0], int64(rv.Port), 10))
				sb.WriteByte(0)
				sb.WriteString(method)
				return sb.String(), true
			}
		}
	}
	v := m.Parsed().Via()
	if v == nil {
		return "", false
	}
	b, _ := v.Params.Get("branch")
	var sb strings.Builder
	if strings.HasPrefix(b, "z9hG4bK") { // the raw Via did not parse but sipgo's did
		sb.Grow(len(b) + len(v.Host) + len(method) + 10)
		sb.WriteString(b)
		sb.WriteByte(0)
		sb.WriteString(v.Host)
		sb.WriteByte(':')
		sb.WriteString(strconv.Itoa(v.Port))
		sb.WriteByte(0)
		sb.WriteString(method)
		return sb.String(), true
	}
	sb.WriteString("2543\x00")
	if c := m.Parsed().CallID(); c != nil {
		sb.WriteString(string(*c))
	}
	sb.WriteByte(0)
	if f := m.Parsed().From(); f != nil {
		tag, _ := f.Params.Get("tag")
		sb.WriteString(tag)
	}
	sb.WriteByte(0)
	if cs := m.Parsed().CSeq(); cs != nil {
		sb.WriteString(strconv.FormatUint(uint64(cs.SeqNo), 10))
	}
	sb.WriteByte(0)
	if s, ok := m.Header("via"); ok {
		sb.WriteString(s)
	}
	sb.WriteByte(0)
	sb.WriteString(method)
	if method != "INVITE" || m.Request() == nil || !m.Request().IsAck() {
		sb.WriteByte(0)
		sb.WriteString(m.Request().Recipient.String())
	}
	return sb.String(), true
}

func keyMethod(m *engine.Msg) string {
	meth := methodID(m)
	if meth == "ACK" {
		return "INVITE"
	}
	return meth
}

// methodID is the method as Kamailio's parser identifies it: INVITE, ACK and CANCEL whatever their case
// ("invite" is an INVITE transaction there too); other methods as written.
func methodID(m *engine.Msg) string {
	meth := m.Method()
	for _, id := range [...]string{"INVITE", "ACK", "CANCEL"} {
		if meth != id && strings.EqualFold(meth, id) {
			return id
		}
	}
	return meth
}

// lookup finds the live server transaction of a request (ACK and CANCEL: the INVITE's when asInvite); one
// completed and waiting out wt_timer as a record is not returned (find).
func (t *TM) lookup(m *engine.Msg, method string) *tx {
	k, ok := serverKey(m, method)
	if !ok {
		return nil
	}
	x, _ := t.server.get(k)
	return x
}

// found is what a request's transaction key finds: a live transaction (x), or a completed one waiting out
// wt_timer (d, a record in the wait store), or nothing (ok false).
type found struct {
	x  *tx
	d  doneTx
	ok bool
}

// find is lookup, records included.
func (t *TM) find(m *engine.Msg, method string) found {
	k, ok := serverKey(m, method)
	if !ok {
		return found{}
	}
	// live first: a transaction becomes a record (compact) before it leaves the live table, so a key
	// missing there is in the store if anywhere
	if x, ok := t.server.get(k); ok {
		return found{x: x, ok: true}
	}
	if d, ok := t.wait.server(k, t.timers.now()); ok {
		return found{d: d, ok: true}
	}
	return found{}
}

// newTx creates and registers the server transaction of m; for a retransmission it returns what m's key
// found instead, with isNew=false.
func (t *TM) newTx(m *engine.Msg) (f found, isNew bool) {
	k, ok := serverKey(m, keyMethod(m))
	if !ok {
		return found{}, false
	}
	meth := m.Method()
	x := &tx{t: t, key: k, method: meth, invite: methodID(m) == "INVITE", created: t.timers.now()}
	if g := m.Generation(); g.Hold() {
		x.gen = g
	}
	// Under the shard's lock, as compact moves a transaction from here to the store: the key is in one of
	// the two whenever it is looked at.
	s := &t.server.shards[t.server.shard(k)]
	s.Lock()
	if old, ok := s.m[k]; ok {
		s.Unlock()
		x.gen.Release()
		return found{x: old, ok: true}, false
	}
	if d, ok := t.wait.server(k, t.timers.now()); ok {
		s.Unlock()
		x.gen.Release()
		return found{d: d, ok: true}, false
	}
	s.m[k] = x
	s.Unlock()
	return found{x: x, ok: true}, true
}

// retransmitted answers a retransmission of a request with the last reply its transaction sent upstream.
func (t *TM) retransmitted(m *engine.Msg, f found) {
	if f.x != nil {
		f.x.retransmitted(m)
		return
	}
	if f.d.reply != nil {
		if err := t.e.SendReplyBytes(m, f.d.reply); err != nil {
			t.logger().Debug("reply not sent again", "err", err, "call_id", callID(m))
		}
	}
}

// retransmitted answers a retransmission of the request with the last reply sent upstream.
func (x *tx) retransmitted(m *engine.Msg) {
	x.mu.Lock()
	if x.reply != nil {
		x.queueReplyTo(m, x.reply)
	}
	x.unlock()
}

// sendUpstream sends a reply (relayed or local) upstream and remembers it; a final one completes the
// server side. Called with x.mu held: the reply goes when it is released.
func (x *tx) sendUpstream(out []byte, code int, relayed bool) {
	count := countLocal
	if relayed {
		count = countRelayed
	}
	x.queue(outMsg{kind: outReply, req: x.req, data: out, code: code, count: count, logErr: true})
	x.reply, x.status = out, int32(code)
	if code >= 200 && !x.final {
		x.final = true
		for _, h := range x.t.e.TxFinalHooks() { // dialog, acc: the call's outcome (engine.TxFinalHook)
			h.TxFinal(x.req, code, out)
		}
		x.completed()
	}
}

// localReply sends a reply the proxy makes for the transaction's request. Called with x.mu held.
func (x *tx) localReply(code int, reason string) {
	if x.final && !(x.invite && code >= 200 && code < 300) {
		return
	}
	out := x.req.BuildReply(nil, code, reason, nil, "")
	x.sendUpstream(out, code, false)
}

// completed runs when a final reply went upstream: retransmit a negative INVITE reply over UDP until the
// ACK (timers G and H), then keep the transaction wt_timer long to absorb retransmissions, then remove it.
func (x *tx) completed() {
	t := x.t
	if x.invite && x.status >= 300 && x.req.Proto == engine.UDP {
		x.retrN = 1
		x.retrUntil = t.timers.now().Add(64 * ms(t.T1))
		x.arm(x.retrInterval())
		return
	}
	x.waiting = true
	x.arm(ms(t.WaitTimer))
}

// retrInterval is the current retransmission interval of the final reply: T1, 2*T1, 4*T1... up to T2.
func (x *tx) retrInterval() time.Duration {
	iv := ms(x.t.T1)
	for i := uint8(1); i < x.retrN && iv < ms(x.t.T2); i++ {
		iv *= 2
	}
	return min(iv, ms(x.t.T2))
}

func (x *tx) arm(d time.Duration) {
	x.t.timers.start(&x.tmr, x, d)
}

func (x *tx) onTimer() {
	x.mu.Lock()
	defer x.unlock()
	if x.removed {
		return
	}
	if x.retrN > 0 && !x.acked {
		now := x.t.timers.now()
		if now.Before(x.retrUntil) {
			x.queue(outMsg{kind: outReply, req: x.req, data: x.reply})
			if x.retrN < 64 {
				x.retrN++
			}
			x.arm(x.retrInterval())
			return
		}
		x.retrN = 0
	}
	for _, b := range x.branches {
		if !b.final {
			x.arm(ms(x.t.WaitTimer)) // a branch still waits for its answer to a CANCEL or timeout
			return
		}
	}
	x.remove()
}

// ack absorbs the ACK of a negative final reply.
func (x *tx) ack() {
	x.mu.Lock()
	defer x.unlock()
	if x.acked || !x.final {
		return
	}
	x.acked = true
	if x.retrN > 0 {
		x.retrN = 0
		x.waiting = true
		x.arm(ms(x.t.WaitTimer))
	}
}

// remove takes the transaction and its branches out of the tables. Called with x.mu held.
func (x *tx) remove() {
	if x.removed {
		return
	}
	x.removed = true
	x.t.server.del(x.key)
	for _, b := range x.branches {
		if b.tmr.armed() {
			b.tmr.Stop()
		}
		x.t.client.del(b.id)
	}
	if x.tmr.armed() {
		x.tmr.Stop()
	}
	// the transaction's last route has run; the release may close the generation's Lua states, so it is
	// made after the lock, with the sends
	x.queue(outMsg{kind: outRelease})
}

// compact replaces a completed transaction by its record in the wait store (wait.go) once nothing of it is
// pending any more: no branch waits for an answer or still retransmits a CANCEL, no failure route runs, no
// final reply is retransmitted. Whoever still holds x (a worker finishing the route that relayed it, a reply
// being handled) finds it removed. Called with x.mu held, by unlock.
func (x *tx) compact() {
	if x.removed || x.inFailure || x.retrN > 0 || !x.final {
		return
	}
	for _, b := range x.branches {
		if !b.final || b.cancelWanted && b.cancel == nil ||
			b.cancel != nil && b.cancelN < 10 && b.dst.Proto == engine.UDP {
			return
		}
	}
	t := x.t
	now := t.timers.now()
	s := &t.server.shards[t.server.shard(x.key)]
	s.Lock()
	if cur, ok := s.m[x.key]; !ok || cur != x || !t.wait.put(x, now, now.Add(ms(t.WaitTimer)), t.e.Listeners()) {
		s.Unlock()
		x.waiting = false // not a record after all: its wait timer removes it
		return
	}
	delete(s.m, x.key)
	s.Unlock()
	x.removed = true
	for _, b := range x.branches {
		if b.tmr.armed() {
			b.tmr.Stop()
		}
		if b.id != "" {
			t.client.del(b.id)
		}
	}
	if x.tmr.armed() {
		x.tmr.Stop()
	}
	x.queue(outMsg{kind: outRelease}) // the record holds the generation on its own (waitStore.genIndex)
}

// unregister drops a transaction that never got a branch out (t_relay failed before sending anything), so
// that the client's retransmission is routed again.
func (x *tx) unregister() {
	x.mu.Lock()
	defer x.unlock()
	if !x.final && x.allBranchesFailed() { // none went out: nothing to wait for
		x.remove()
	}
}

func callID(m *engine.Msg) string {
	if m == nil {
		return ""
	}
	c, _ := m.Header("call-id") // raw (compact "i" too): for log lines, never a parse
	return c
}

func (x *tx) fire()             { x.onTimer() } // its timer (timers.go)
func (x *tx) timerSet() *timers { return &x.t.timers }

// detachReq is the transaction's copy of request m (engine.Msg.Detach) without tm's state for m, which
// belongs to the route running m: a copy runs its own routes with a msgCtx of its own. Left out rather than
// deleted from the copy, so that the copy's module state array has no slot for it.
func detachReq(m *engine.Msg) *engine.Msg {
	c := m.ModState(ctxKey)
	m.DelModState(ctxKey)
	d := m.Detach()
	if c != nil {
		m.SetModState(ctxKey, c)
	}
	return d
}
