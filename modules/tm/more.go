package tm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// The rest of Kamailio 5.6's tm KEMI functions, and the support tmx needs (suspend/continue, lookups by
// Call-ID). Per-transaction knobs that siplua's tm does not vary per transaction (retransmission timers,
// lifetimes, 6xx handling, the Reason of an end-to-end CANCEL) are accepted and return 1: the module's
// parameters apply, as they do in Kamailio when the knob is left alone. The README lists which.

// moreState is what the functions below keep for one message (engine.Msg.ModState("tm.more")).
type moreState struct {
	onBranchFailure string
}

const moreModKey = "tm.more"

func moreOf(m *engine.Msg) *moreState {
	if s, ok := m.ModState(moreModKey).(*moreState); ok {
		return s
	}
	s := &moreState{}
	m.SetModState(moreModKey, s)
	return s
}

func (t *TM) moreExports() []engine.Export {
	one := func(*engine.Msg) int { return 1 }
	oneI := func(*engine.Msg, int) int { return 1 }
	return []engine.Export{
		{Name: "t_set_fr_inv", Fn: func(m *engine.Msg, inv int) int { return t.setFr(m, inv, 0) }},
		{Name: "t_set_retr", Fn: func(m *engine.Msg, t1, t2 int) int { return 1 }},
		{Name: "t_reset_retr", Fn: one},
		{Name: "t_set_max_lifetime", Fn: func(m *engine.Msg, inv, noninv int) int { return 1 }},
		{Name: "t_reset_max_lifetime", Fn: one},
		{Name: "t_set_auto_inv_100", Fn: oneI},
		{Name: "t_set_disable_6xx", Fn: oneI},
		{Name: "t_set_disable_failover", Fn: oneI},
		{Name: "t_set_disable_internal_reply", Fn: oneI},
		{Name: "t_set_no_e2e_cancel_reason", Fn: oneI},
		{Name: "t_use_uac_headers", Fn: one},
		{Name: "t_clean", Fn: one},
		{Name: "t_lookup_request", Fn: t.lookupRequest},
		{Name: "t_lookup_cancel", Fn: func(m *engine.Msg) int { return t.lookupCancel(m, 0) }},
		{Name: "t_lookup_cancel_flags", Fn: t.lookupCancel},
		{Name: "t_relay_to_flags", Fn: func(m *engine.Msg, flags int) int { return t.relay(m, engine.ProtoNone, "") }},
		{Name: "t_relay_to_proxy", Fn: func(m *engine.Msg, proxy string) int { return t.relayToProxy(m, proxy, 0) }},
		{Name: "t_relay_to_proxy_flags", Fn: t.relayToProxy},
		{Name: "t_replicate", Fn: t.replicate},
		{Name: "t_on_branch_failure", Fn: func(m *engine.Msg, f string) int { moreOf(m).onBranchFailure = f; return 1 }},
		{Name: "t_get_branch_index", Fn: branchIndex},
		{Name: "t_grep_status", Fn: t.grepStatus},
		{Name: "t_is_expired", Fn: t.isExpired},
		{Name: "t_is_retr_async_reply", Fn: func(m *engine.Msg) int { return -1 }},
		{Name: "t_next_contact_flow", Fn: func(m *engine.Msg) int { return -1 }},
		{Name: "t_retransmit_reply", Fn: t.retransmitReply},
		{Name: "t_save_lumps", Fn: t.saveLumps},
		{Name: "ki_t_load_contacts_mode", Fn: func(m *engine.Msg, mode int) int { return loadContacts(m) }},
		{Name: "t_uac_send", Fn: t.uacSend},
	}
}

// lookupRequest is t_lookup_request: 1 when the request belongs to an existing transaction (a
// retransmission), -1 otherwise; nothing is sent.
func (t *TM) lookupRequest(m *engine.Msg) int {
	if !m.IsRequest() || m.IsAck() {
		return -1
	}
	return b2i(t.find(m, keyMethod(m)).ok)
}

// lookupCancel is t_lookup_cancel(flags): for a CANCEL, 1 when the INVITE transaction it cancels exists;
// flags 1 copies the INVITE's message flags to the CANCEL, as Kamailio.
func (t *TM) lookupCancel(m *engine.Msg, flags int) int {
	if m.Method() != "CANCEL" {
		return -1
	}
	f := t.find(m, "INVITE")
	if !f.ok {
		return -1
	}
	if x := f.x; x == nil {
		if flags&1 != 0 {
			m.Flags = f.d.flags
		}
	} else if flags&1 != 0 {
		x.mu.Lock()
		if x.req != nil {
			m.Flags = x.req.Flags
		}
		x.unlock()
	}
	return 1
}

// relayToProxy is t_relay_to_proxy("[proto:]host[:port]"): t_relay to that address.
func (t *TM) relayToProxy(m *engine.Msg, proxy string, flags int) int {
	proto := engine.ProtoNone
	addr := proxy
	if p, rest, ok := strings.Cut(proxy, ":"); ok {
		if pp, ok := engine.ParseProto(p); ok {
			proto, addr = pp, rest
		}
	}
	if addr == "" {
		return -1
	}
	if _, _, err := splitHostPort(addr); err != nil {
		t.logger().Warn("t_relay_to_proxy: bad address", "proxy", proxy, "err", err)
		return -1
	}
	if !strings.Contains(strings.TrimPrefix(addr, "["), "]:") && strings.Count(addr, ":") != 1 {
		addr += ":5060"
	}
	return t.relay(m, proto, addr)
}

func splitHostPort(a string) (string, int, error) {
	if strings.HasPrefix(a, "[") {
		end := strings.Index(a, "]")
		if end < 0 {
			return "", 0, fmt.Errorf("%q: unclosed [", a)
		}
		if rest := a[end+1:]; rest != "" {
			p, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
			return a[:end+1], p, err
		}
		return a[:end+1], 0, nil
	}
	h, p, ok := strings.Cut(a, ":")
	if !ok {
		return h, 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", a)
	}
	return h, n, nil
}

// replicate is t_replicate(uri): a copy of the request goes to uri, and nothing of it comes back to the
// caller (Kamailio: "no information due the replicated request will be forwarded to the original UAC"):
// it leaves with a Via branch of tm's whose replies tm absorbs. It is sent once (no retransmission).
func (t *TM) replicate(m *engine.Msg, uri string) int {
	if !m.IsRequest() || m.IsAck() {
		return -1
	}
	d, err := engine.ParseDest(uri)
	if err != nil {
		return -1
	}
	tg, ok := d.Literal()
	if !ok {
		ts, ready, err := t.e.Resolve(d, func([]engine.Target, error) {})
		if err != nil || !ready || len(ts) == 0 {
			t.logger().Info("t_replicate: destination not resolved now", "uri", uri, "err", err)
			return -1
		}
		tg = ts[0]
	}
	local := t.e.ListenerFor(m.Local, tg)
	if local == nil {
		return -1
	}
	id := t.prefix + "rpl" + strconv.FormatUint(t.seq.Add(1), 36)
	out := m.AppendRequest(nil, local, tg.Proto, id, m.NewURI)
	t.absorbReplies(id)
	if err := t.e.Send(tg.Proto, local, tg.Addr, out); err != nil {
		t.logger().Info("t_replicate failed", "uri", uri, "err", err, "call_id", callID(m))
		return -1
	}
	t.e.CountForwarded()
	return 1
}

// absorbMethod is the method of the stand-in transaction whose branches absorb replies: no reply has it,
// so OnReply takes them and does nothing more.
const absorbMethod = "\x00absorb"

// absorbReplies makes tm take, and drop, the replies to a request it sent with Via branch id (t_replicate,
// t_uac_send) for 64*T1, the life of a client transaction (RFC 3261 timer F).
func (t *TM) absorbReplies(id string) {
	x := &tx{t: t, method: absorbMethod, final: true}
	t.client.put(id, &branch{tx: x, id: id, final: true})
	t.timers.afterFunc(64*ms(t.T1), func() { t.client.del(id) })
}

// branchIndex is t_get_branch_index: the branch a branch, onreply or failure route runs for; 0 in the
// request route (Kamailio 5.6's value there).
func branchIndex(m *engine.Msg) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.route == routeRequest {
		return 0
	}
	return c.branch
}

// grepStatus is t_grep_status(code): 1 when a branch of the transaction got that final status.
func (t *TM) grepStatus(m *engine.Msg, code int) int {
	return withTx(m, func(x *tx) int {
		for _, b := range x.branches {
			if b.final && int(b.status) == code && !b.timedOut {
				return 1
			}
		}
		return -1
	})
}

// isExpired is t_is_expired: 1 when the transaction outlived max_inv_lifetime / max_noninv_lifetime.
func (t *TM) isExpired(m *engine.Msg) int {
	return withTx(m, func(x *tx) int {
		life := ms(t.MaxNonInvLifetime)
		if x.invite {
			life = ms(t.MaxInvLifetime)
		}
		return b2i(x.t.timers.now().Sub(x.created) > life)
	})
}

// retransmitReply is t_retransmit_reply: the last reply of the transaction is sent again.
func (t *TM) retransmitReply(m *engine.Msg) int {
	x := t.txOf(m)
	if x == nil {
		return -1
	}
	x.mu.Lock()
	defer x.unlock()
	if x.reply == nil {
		return -1
	}
	x.queueReplyTo(m, x.reply)
	return 1
}

// saveLumps is t_save_lumps: the route's changes to the request (headers, R-URI, $du, flags) are stored
// in its transaction, for the routes that run later from it (failure route, t_continue).
func (t *TM) saveLumps(m *engine.Msg) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.tx == nil || c.route != routeRequest {
		return -1
	}
	x := c.tx
	x.mu.Lock()
	defer x.unlock()
	x.req = detachReq(m)
	return 1
}

// txOf is the transaction of m: its own, or the one it belongs to (a retransmission).
func (t *TM) txOf(m *engine.Msg) *tx {
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok && c.tx != nil {
		return c.tx
	}
	if !m.IsRequest() {
		return nil
	}
	return t.lookup(m, keyMethod(m))
}

// uacSend is t_uac_send(method, ruri, nexthop, socket, headers, body): a request the proxy originates.
// headers must hold From and To (Kamailio's rule); Call-ID and CSeq are added when missing. It is sent once
// to nexthop (or the R-URI), from the socket "proto:ip:port" when given; its replies end at the proxy. tm's
// event_callback then runs with "tm:local-request" on a worker, the request as its message.
func (t *TM) uacSend(m *engine.Msg, method, ruri, nexthop, socket, headers, body string) int {
	if method == "" || ruri == "" {
		return -1
	}
	lh := strings.ToLower(headers)
	if !(strings.Contains(lh, "from:") || strings.HasPrefix(lh, "f:")) || !strings.Contains(lh, "to:") {
		t.logger().Warn("t_uac_send: headers must have From and To", "headers", headers)
		return -1
	}
	dst := nexthop
	if dst == "" {
		dst = ruri
	}
	d, err := engine.ParseDest(dst)
	if err != nil {
		t.logger().Warn("t_uac_send: bad destination", "uri", dst, "err", err)
		return -1
	}
	tg, ok := d.Literal()
	if !ok {
		ts, ready, err := t.e.Resolve(d, func([]engine.Target, error) {})
		if err != nil || !ready || len(ts) == 0 {
			t.logger().Info("t_uac_send: destination not resolved now", "uri", dst, "err", err)
			return -1
		}
		tg = ts[0]
	}
	var prefer *engine.Listener
	if socket != "" {
		prefer = t.socketByName(socket)
	}
	local := t.e.ListenerFor(prefer, tg)
	if local == nil {
		return -1
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=%suac%s\r\nMax-Forwards: 70\r\n",
		method, ruri, tg.Proto.Upper(), local.SentBy, t.prefix, id)
	h := strings.TrimRight(headers, "\r\n")
	if h != "" {
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(h, "\r\n", "\n"), "\n", "\r\n") + "\r\n")
	}
	if !hasHeader(lh, "call-id", "i") {
		b.WriteString("Call-ID: " + id + "@" + local.SentBy + "\r\n")
	}
	if !hasHeader(lh, "cseq", "") {
		b.WriteString("CSeq: 10 " + method + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	out := []byte(b.String())
	t.absorbReplies(t.prefix + "uac" + id)
	if err := t.e.Send(tg.Proto, local, tg.Addr, out); err != nil {
		t.logger().Info("t_uac_send: not sent", "dst", tg.Addr.String(), "err", err)
		return -1
	}
	t.e.CountForwarded()
	t.localRequestEvent(out, local)
	return 1
}

func hasHeader(lower, name, compact string) bool {
	for _, l := range strings.Split(lower, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, name+":") || compact != "" && strings.HasPrefix(l, compact+":") {
			return true
		}
	}
	return false
}

// socketByName finds a listening socket given as "proto:ip:port" (Kamailio's socket parameter).
func (t *TM) socketByName(s string) *engine.Listener { return t.e.ListenerByName(s) }

// localRequestEvent runs event_callback("tm:local-request") for a request tm originated, on a worker with
// the request as its message (Kamailio's event_route[tm:local-request]).
func (t *TM) localRequestEvent(out []byte, local *engine.Listener) {
	fn := t.EventCallback
	if fn == "" {
		return
	}
	lm, err := t.e.NewMsg(out, local.Addr, local.Proto)
	if err != nil {
		t.logger().Warn("event_callback: cannot build the local request", "err", err)
		return
	}
	t.e.RunOnWorker(lm, func(lm *engine.Msg) {
		if err := lm.CallRouteArgs(fn, "tm:local-request"); err != nil {
			t.logger().Warn("event_callback failed", "function", fn, "event", "tm:local-request", "err", err)
		}
	})
}

// morePVs: $T(id_index), $T(id_label) (suspended transactions), $T(branch_index), $T(reply_code).
func (t *TM) morePVs() []engine.PV {
	return []engine.PV{{Name: "T", Get: func(m *engine.Msg, arg string) engine.Value {
		switch arg {
		case "id_index", "id_label":
			return t.asyncPV(m, arg)
		case "branch_index":
			return engine.IntVal(int64(branchIndex(m)))
		case "reply_code":
			if c, _, ok := t.replyOf(m); ok {
				return engine.IntVal(int64(c))
			}
		}
		return engine.Value{}
	}}}
}

// routeBranchFailure is the kind of the branch failure route's message context (Kamailio's
// BRANCH_FAILURE_ROUTE): t_get_status_code, $T_reply_code and t_get_branch_index tell the reply and branch.
const routeBranchFailure routeKind = 100

// runBranchFailure runs the t_on_branch_failure function armed for the transaction for a negative final
// reply of branch b, before the reply is aggregated, as Kamailio's branch failure route: on a copy of the
// request (its R-URI, headers, flags), without arguments, on the worker that received the reply. Called
// from OnReply without x.mu.
func (t *TM) runBranchFailure(x *tx, b *branch, m *engine.Msg, code int) {
	if code < 300 || m.Dropped {
		return
	}
	x.mu.Lock()
	var fn string
	var fm *engine.Msg
	if x.req != nil {
		if s, ok := x.req.ModState(moreModKey).(*moreState); ok { // Detach kept the request's module state
			fn = s.onBranchFailure
		}
	}
	final := b.final
	if fn != "" && !final {
		fm = x.req.Detach()
		fm.SetModState(ctxKey, &msgCtx{tx: x, route: routeBranchFailure, branch: int(b.idx), code: code, reason: m.Reason()})
	}
	x.unlock()
	if fm == nil {
		return
	}
	if err := m.CallRouteFor(fm, fn); err != nil {
		t.logger().Error("branch failure route failed", "route", fn, "err", err, "call_id", callID(m))
	}
}

// validateMore checks the parameters of more.go.
func validateMore(t *TM) error {
	if strings.ContainsAny(t.EventCallback, " \t()$.:") {
		return fmt.Errorf("event_callback: expected a Lua function name, got %q", t.EventCallback)
	}
	return nil
}

// onSendDropped ends a branch whose request the onsend callback dropped before it was sent (Kamailio:
// E_ADM_PROHIBITED, t_relay fails): it never competes for the final answer.
func (t *TM) onSendDropped(b *branch) error {
	x := b.tx
	x.mu.Lock()
	defer x.unlock()
	b.final, b.dropped, b.retr, b.status = true, true, false, 477
	if b.tmr.armed() {
		b.tmr.Stop()
	}
	if b.id != "" {
		t.client.del(b.id)
	}
	return engine.ErrOnSendDrop
}
