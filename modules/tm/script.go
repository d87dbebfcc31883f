package tm

import (
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// The KSR.tm functions besides t_relay. Return values follow Kamailio's KEMI: 1 true, -1 false, 0 stops
// the script in native configs (here: a retransmission that was absorbed).

func (t *TM) relayToProtoAddr(m *engine.Msg, proto, host string, port int) int {
	p, ok := engine.ParseProto(proto)
	if !ok {
		t.logger().Warn("t_relay_to_proto_addr: unsupported transport", "proto", proto)
		return -1
	}
	return t.relay(m, p, host+":"+strconv.Itoa(port))
}

func (t *TM) relayToProto(m *engine.Msg, proto string) int {
	p, ok := engine.ParseProto(proto)
	if !ok {
		t.logger().Warn("t_relay_to_proto: unsupported transport", "proto", proto)
		return -1
	}
	return t.relay(m, p, "")
}

// newtran is t_newtran: creates the transaction (100 Trying for INVITE); 0 for a retransmission (absorbed).
func (t *TM) newtran(m *engine.Msg) int {
	if !m.IsRequest() || methodID(m) == "ACK" {
		return -1
	}
	c := ctxOf(m)
	if c.tx != nil {
		return 1
	}
	f, isNew := t.newTx(m)
	if !f.ok {
		return -1
	}
	if !isNew {
		t.retransmitted(m, f)
		return 0
	}
	x := f.x
	c.tx = x
	x.mu.Lock()
	defer x.unlock()
	x.req = detachReq(m)
	if x.invite && t.AutoInv100 {
		x.reply = m.BuildReply(nil, 100, "trying -- your call is important to us", nil, "")
		x.status = 100
		x.queueReplyTo(m, x.reply)
	}
	return 1
}

// reply is t_reply: answers through the transaction, creating it if needed.
func (t *TM) reply(m *engine.Msg, code int, reason string) int {
	if code < 100 || code > 699 {
		return -1
	}
	if c, ok := m.ModState(ctxKey).(*msgCtx); (!ok || c.tx == nil) && !t.find(m, keyMethod(m)).ok && t.newtran(m) < 0 {
		return -1 // t_reply creates the transaction when there is none
	}
	ok, err := t.TxReply(m, code, reason)
	if !ok || err != nil {
		return -1
	}
	return 1
}

// TxReply answers m through its transaction (engine.TxReplier: KSR.sl.send_reply); handled=false when m has
// none (sl then replies statelessly).
func (t *TM) TxReply(m *engine.Msg, code int, reason string) (bool, error) {
	c, _ := m.ModState(ctxKey).(*msgCtx)
	var x *tx
	if c != nil {
		x = c.tx
	}
	if x == nil {
		// Only the transaction this message's route created or looked up (Kamailio's t_gett(): sl's
		// send_reply never searches the table). A REGISTER answered by save() or an auth challenge costs
		// no key building and no table lookup.
		return false, nil
	}
	x.mu.Lock()
	defer x.unlock()
	if x.req == nil {
		return false, nil
	}
	if c != nil && c.route == routeFailure {
		c.replied = true
		if code >= 200 {
			x.onFailure = ""
		}
	}
	if len(m.ReplyHdrs) > 0 { // append_to_reply of this route applies to the transaction's reply
		x.req.ReplyHdrs = append(x.req.ReplyHdrs[:0], m.ReplyHdrs...)
	}
	if len(m.ReplyBody) > 0 { // set_reply_body of this route too: its Content-Type came with ReplyHdrs
		x.req.ReplyBody = append(x.req.ReplyBody[:0], m.ReplyBody...)
	}
	x.localReply(code, reason)
	m.Replied = true
	return true, nil
}

// checkTrans is t_check_trans: CANCEL → 1 when its INVITE transaction exists; ACK → 1 when it belongs to a
// transaction answered with 2xx, 0 when it is the hop-by-hop ACK of a negative reply (absorbed); other
// requests → 0 when retransmitted (the last reply is sent again), -1 when new.
func (t *TM) checkTrans(m *engine.Msg) int {
	if !m.IsRequest() { // raw: no sipgo parse on the relay path
		return -1
	}
	switch methodID(m) {
	case "CANCEL":
		if t.find(m, "INVITE").ok {
			return 1
		}
		return -1
	case "ACK":
		f := t.find(m, "INVITE")
		if !f.ok {
			return -1
		}
		if f.x == nil { // completed, a record: the ACK of its 2xx, or of a negative reply (absorbed)
			if f.d.status >= 200 && f.d.status < 300 {
				return 1
			}
			return 0
		}
		x := f.x
		x.mu.Lock()
		st := x.status
		x.unlock()
		if st >= 200 && st < 300 {
			return 1
		}
		x.ack()
		return 0
	}
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok && c.tx != nil {
		return 1
	}
	f := t.find(m, keyMethod(m))
	if !f.ok {
		return -1
	}
	t.retransmitted(m, f)
	return 0
}

func (t *TM) isSet(m *engine.Msg, what string) int {
	c := ctxOf(m)
	var name string
	switch strings.ToLower(what) {
	case "failure_route":
		name = c.onFailure
	case "branch_route":
		name = c.onBranch
	case "onreply_route":
		name = c.onReply
	default:
		return -1
	}
	if name == "" && c.tx != nil {
		c.tx.mu.Lock()
		switch strings.ToLower(what) {
		case "failure_route":
			name = c.tx.onFailure
		case "branch_route":
			name = c.tx.onBranch
		case "onreply_route":
			name = c.tx.onReply
		}
		c.tx.unlock()
	}
	return b2i(name != "")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return -1
}

// withTx runs f on the message's transaction under its lock; -1 when there is none.
func withTx(m *engine.Msg, f func(x *tx) int) int {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.tx == nil {
		return -1
	}
	c.tx.mu.Lock()
	defer c.tx.unlock()
	return f(c.tx)
}

func (t *TM) isCanceled(m *engine.Msg) int {
	return withTx(m, func(x *tx) int { return b2i(x.canceled) })
}

func (t *TM) anyTimeout(m *engine.Msg) int {
	return withTx(m, func(x *tx) int {
		for _, b := range x.branches {
			if b.timedOut {
				return 1
			}
		}
		return -1
	})
}

// branchTimeout: the branch the failure route runs for (the best one) timed out.
func (t *TM) branchTimeout(m *engine.Msg) int {
	return withTx(m, func(x *tx) int {
		if b := t.best(x); b != nil && b.timedOut {
			return 1
		}
		return -1
	})
}

// branchReplied is t_branch_replied: in a failure route, whether the picked branch had a reply before the
// one that completed the transaction (Kamailio's FL_REPLIED); -1 elsewhere.
func (t *TM) branchReplied(m *engine.Msg) int {
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok && c.route == routeFailure {
		return b2i(c.pickedReplied)
	}
	return -1
}

func (t *TM) anyReplied(m *engine.Msg) int {
	return withTx(m, func(x *tx) int {
		for _, b := range x.branches {
			if b.status > 0 && !b.timedOut {
				return 1
			}
		}
		return -1
	})
}

// setFr is t_set_fr(fr_inv_timeout, fr_timeout) in milliseconds (0 keeps the default).
func (t *TM) setFr(m *engine.Msg, inv, noninv int) int {
	c := ctxOf(m)
	if inv > 0 {
		c.frInv = ms(inv)
	}
	if noninv > 0 {
		c.fr = ms(noninv)
	}
	if c.tx != nil {
		c.tx.mu.Lock()
		t.arm(c.tx, c)
		c.tx.unlock()
	}
	return 1
}

func (t *TM) statusCode(m *engine.Msg) int {
	if c, _, ok := t.replyOf(m); ok {
		return c
	}
	return -1
}

// checkStatus is t_check_status(regex) on the reply code, matched as a string.
func (t *TM) checkStatus(m *engine.Msg, re string) int {
	c, _, ok := t.replyOf(m)
	if !ok {
		return -1
	}
	return b2i(matchCode(re, strconv.Itoa(c)))
}

// replyOf is the reply a route is about: the received one in an onreply route, the winning one in a failure
// route, otherwise the last reply the transaction sent.
func (t *TM) replyOf(m *engine.Msg) (int, string, bool) {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok {
		return 0, "", false
	}
	if c.code > 0 && (c.route == routeReply || c.route == routeFailure || c.route == routeBranchFailure) {
		return c.code, c.reason, true
	}
	if c.tx == nil {
		return 0, "", false
	}
	c.tx.mu.Lock()
	defer c.tx.unlock()
	if c.tx.status == 0 {
		return 0, "", false
	}
	return int(c.tx.status), "", true
}

// dropReplies is t_drop_replies(mode) for the failure route it runs in: "n" keeps the earlier replies, "l"
// drops those of the last serial-forking step, anything else drops them all (Kamailio's
// t_drop_replies_helper).
func dropReplies(m *engine.Msg, mode string) int {
	c := ctxOf(m)
	switch {
	case strings.HasPrefix(mode, "n"):
		c.dropMode = 0 + 1
	case strings.HasPrefix(mode, "l"):
		c.dropMode = 2 + 1
	default:
		c.dropMode = 1 + 1
	}
	return 1
}
