package tm

import (
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// What tmx's KEMI functions need from the transactions (tmx imports tm). Return values are Kamailio 5.6's.

// KSuspend is tmx.t_suspend: 1 when suspended, -1 otherwise.
func (t *TM) KSuspend(m *engine.Msg) int {
	if _, _, err := t.Suspend(m); err != nil {
		t.logger().Warn("t_suspend failed", "err", err, "call_id", callID(m))
		return -1
	}
	return 1
}

// KContinue is tmx.t_continue(index, label, route): 1 when the route was queued, -1 otherwise.
func (t *TM) KContinue(m *engine.Msg, index, label int, route string) int {
	if route == "" || index < 0 || label < 0 {
		return -1
	}
	if err := t.Continue(uint32(index), uint32(label), route); err != nil {
		t.logger().Warn("resuming the processing of the transaction failed", "index", index, "label", label, "err", err)
		return -1
	}
	return 1
}

// KDrop is tmx.t_drop_rcode(code) / t_drop(): the transaction goes without any reply; 0 (Kamailio's
// value) when there was one, -1 otherwise.
func (t *TM) KDrop(m *engine.Msg, code int) int {
	x := t.txOf(m)
	if x == nil {
		return -1
	}
	t.drop(x, code)
	return 0
}

// drop ends a transaction without answering: its branches are cancelled, a suspended one forgotten.
func (t *TM) drop(x *tx, code int) {
	x.mu.Lock()
	defer x.unlock()
	if x.removed {
		return
	}
	if code > 0 && !x.final {
		x.status = int32(code)
	}
	x.final = true // nothing more goes upstream
	t.cancelBranches(x, nil)
	x.arm(ms(t.WaitTimer))
}

// KFlushFlags is tmx.t_flush_flags: the message flags become the transaction's.
func (t *TM) KFlushFlags(m *engine.Msg) int {
	x := t.txOf(m)
	if x == nil {
		return -1
	}
	x.mu.Lock()
	defer x.unlock()
	if x.req == nil {
		return -1
	}
	x.req.Flags = m.Flags
	return 1
}

// KIsRequestRoute is tmx.t_is_request_route: 1 in the request route.
func KIsRequestRoute(m *engine.Msg) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	return b2i(!ok || c.route == routeRequest)
}

// KCancelBranches is tmx.t_cancel_branches("all" | "others" | "this") in an onreply route: CANCEL to the
// pending branches, all of them, all but the one this reply is for, or only that one.
func (t *TM) KCancelBranches(m *engine.Msg, mode string) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.tx == nil || c.route != routeReply {
		return -1
	}
	x := c.tx
	x.mu.Lock()
	defer x.unlock()
	var cur *branch
	if c.branch >= 0 && c.branch < len(x.branches) {
		cur = x.branches[c.branch]
	}
	switch strings.ToLower(mode) {
	case "all":
		t.cancelBranches(x, nil)
	case "others":
		t.cancelBranches(x, cur)
	case "this":
		if cur == nil {
			return -1
		}
		// as cancelBranches does for each branch
		if cur.final || cur.cancel != nil {
			return 1
		}
		if cur.status >= 100 {
			cur.retr = false
			cur.sendCancel()
			cur.schedule(cur.tx.t.timers.now())
		} else {
			cur.final, cur.retr, cur.cancelWanted = true, false, true
			cur.status, cur.reason, cur.reply = 487, "Request Terminated", nil
		}
	default:
		t.logger().Error("t_cancel_branches: invalid mode", "mode", mode)
		return -1
	}
	return 1
}

// byCallID finds the INVITE (or other) server transaction of a Call-ID and CSeq number (tmx's
// t_lookup_callid): a scan of the table, for occasional use (a ctl command, a timer route).
func (t *TM) byCallID(callid, cseq string) *tx {
	cseq = strings.TrimSpace(cseq)
	for i := range t.server.shards {
		s := &t.server.shards[i]
		s.Lock()
		var found *tx
		for _, x := range s.m {
			if x.req == nil || callID(x.req) != callid {
				continue
			}
			if cs := x.req.Parsed().CSeq(); cs != nil && strconv.FormatUint(uint64(cs.SeqNo), 10) == cseq {
				found = x
				break
			}
		}
		s.Unlock()
		if found != nil {
			return found
		}
	}
	return nil
}

// KCancelCallID is tmx.t_cancel_callid(callid, cseq, flag[, rcode]): CANCEL to the branches of that
// transaction; flag (1..31) is set in its request. rcode (the Reason cause) is not sent by siplua.
func (t *TM) KCancelCallID(m *engine.Msg, callid, cseq string, flag, rcode int) int {
	x := t.byCallID(callid, cseq)
	if x == nil {
		if t.wait.byCallID(callid, cseq, t.timers.now()) {
			return 1 // completed, waiting out wt_timer: nothing left to cancel
		}
		return -1
	}
	x.mu.Lock()
	defer x.unlock()
	if x.req != nil && flag > 0 && flag < 32 {
		x.req.Flags |= 1 << uint(flag)
	}
	if x.final {
		return 1
	}
	x.canceled = true
	t.cancelBranches(x, nil)
	t.complete(x)
	return 1
}

// KReplyCallID is tmx.t_reply_callid(callid, cseq, code, reason): a reply through that transaction.
func (t *TM) KReplyCallID(m *engine.Msg, callid, cseq string, code int, reason string) int {
	if code < 100 || code > 699 {
		return -1
	}
	x := t.byCallID(callid, cseq)
	if x == nil {
		return -1
	}
	x.mu.Lock()
	defer x.unlock()
	if x.req == nil || x.final && !(x.invite && code < 300) {
		return -1
	}
	x.localReply(code, reason)
	return 1
}

// KReuseBranch is tmx.t_reuse_branch: in a branch failure route, the R-URI (and $du) of the route's request
// become those of the branch that failed, as Kamailio; -1 in any other route.
func (t *TM) KReuseBranch(m *engine.Msg) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.tx == nil || c.route != routeBranchFailure {
		return -1
	}
	x := c.tx
	x.mu.Lock()
	defer x.unlock()
	if c.branch < 0 || c.branch >= len(x.branches) {
		return -1
	}
	b := x.branches[c.branch]
	m.NewURI = b.uri
	return 1
}
