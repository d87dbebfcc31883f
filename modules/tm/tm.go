// Package tm keeps SIP transactions (Kamailio's tm module): server transactions that absorb
// retransmissions, client transactions per branch with RFC 3261 timers, parallel and serial forking with
// §16.7 reply aggregation, CANCEL, and the failure, branch and onreply routes.
package tm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "tm", New: func() engine.Instance {
		return &TM{
			FrTimer: 30000, FrInvTimer: 120000, MaxInvLifetime: 180000, MaxNonInvLifetime: 32000,
			T1: 500, T2: 4000, WaitTimer: 5000, FailureReplyMode: 3, AutoInv100: true, Remap503: true, AggregateChallenges: true,
			CancelBMethod: 1,
		}
	}})
}

// TM holds the module parameters (milliseconds, Kamailio's names) and the transaction tables.
type TM struct {
	// FrTimer: how long a branch waits for a first reply (Kamailio fr_timer).
	FrTimer int `toml:"fr_timer"`
	// FrInvTimer: how long an INVITE branch waits for a final reply once a provisional came (fr_inv_timer).
	FrInvTimer int `toml:"fr_inv_timer"`
	// MaxInvLifetime and MaxNonInvLifetime cap a transaction's branches however many provisionals come.
	MaxInvLifetime    int `toml:"max_inv_lifetime"`
	MaxNonInvLifetime int `toml:"max_noninv_lifetime"`
	// T1, T2: RFC 3261 retransmission timers (Kamailio retr_timer1, retr_timer2).
	T1 int `toml:"retr_timer1"`
	T2 int `toml:"retr_timer2"`
	// WaitTimer: how long a completed transaction stays to absorb retransmissions (Kamailio wt_timer).
	WaitTimer int `toml:"wt_timer"`
	// FailureReplyMode is Kamailio's failure_reply_mode: which earlier replies still compete for the final
	// answer after a failure route. 0 keeps all; 1 drops all; 2 drops those of the serial-forking step that
	// just failed; 3 drops all when the failure route started a new step. With 1 and 2, a failure route that
	// neither relays nor replies leaves nothing to send: the caller gets a local 500, as in Kamailio.
	// KSR.tm.t_drop_replies overrides it for one failure route.
	FailureReplyMode int `toml:"failure_reply_mode"`
	// Remap503 sends a local "500 Service Unavailable" instead of relaying a 503 chosen as the final answer
	// (RFC 3261 §16.7 step 6; Kamailio remap_503_500).
	Remap503 bool `toml:"remap_503_500"`
	// AggregateChallenges: when the final reply is a 401/407 and several branches challenged, the caller
	// gets one reply with all their WWW-/Proxy-Authenticate headers (Kamailio aggregate_challenges).
	AggregateChallenges bool `toml:"aggregate_challenges"`
	// CancelBMethod is Kamailio's cancel_b_method: how a branch that has had no reply yet is cancelled (a
	// CANCEL from the caller, a 2xx or 6xx on another branch). 0 ends it at once with a local 487 and stops
	// retransmitting the request; 1 (Kamailio's default, RFC 3261 §9.1) keeps retransmitting it and sends
	// the CANCEL once a provisional reply arrives, the final reply coming from the branch; 2 sends the
	// CANCEL at once and stops retransmitting the request (not RFC 3261 compliant).
	// Branches that had a provisional are always sent a CANCEL.
	CancelBMethod int `toml:"cancel_b_method"`
	// AutoInv100 sends 100 Trying when an INVITE transaction is created (Kamailio auto_inv_100).
	AutoInv100 bool `toml:"auto_inv_100"`
	// EventCallback names the Lua function run with "tm:local-request" for a request tm originates
	// (t_uac_send), Kamailio's event_callback (more.go).
	EventCallback string `toml:"event_callback"`

	e      *engine.Engine
	log    *slog.Logger
	server table[*tx]     // server transactions by RFC 3261 §17.2.3 key
	client table[*branch] // client transactions by the Via branch the proxy generated
	prefix string         // per-process part of generated branches
	timers timers         // every transaction and branch timer, on one goroutine
	wait   waitStore      // completed transactions waiting out wt_timer, as records (wait.go)
	seq    atomic.Uint64
	// sendHook, when set (tests, export_test.go), runs before every send tm makes for a transaction.
	sendHook hookSlot
	async    asyncTable // suspended transactions (async.go)
	outPool  sync.Pool  // *outArr: the send queues of transactions that have sends to make (send.go)
}

// Validate checks the timers.
func (t *TM) Validate() error {
	for name, v := range map[string]int{"fr_timer": t.FrTimer, "fr_inv_timer": t.FrInvTimer,
		"max_inv_lifetime": t.MaxInvLifetime, "max_noninv_lifetime": t.MaxNonInvLifetime,
		"retr_timer1": t.T1, "retr_timer2": t.T2} {
		if v <= 0 {
			return fmt.Errorf("%s: expected a positive number of milliseconds, got %d", name, v)
		}
	}
	if t.WaitTimer < 0 {
		return fmt.Errorf("wt_timer: expected >= 0 ms, got %d", t.WaitTimer)
	}
	if t.FailureReplyMode < 0 || t.FailureReplyMode > 3 {
		return fmt.Errorf("failure_reply_mode: expected 0 (keep all replies), 1 (drop all), 2 (drop the last "+
			"serial-forking step) or 3 (drop all when a new step starts), got %d", t.FailureReplyMode)
	}
	if t.CancelBMethod < 0 || t.CancelBMethod > 2 {
		return fmt.Errorf("cancel_b_method: expected 0 (local 487 at once), 1 (CANCEL once a provisional "+
			"arrives) or 2 (CANCEL at once), got %d", t.CancelBMethod)
	}
	if err := validateMore(t); err != nil {
		return err
	}
	if t.T2 < t.T1 {
		return fmt.Errorf("retr_timer2 (%d) must not be lower than retr_timer1 (%d)", t.T2, t.T1)
	}
	return nil
}

// Start keeps the engine and prepares the tables.
func (t *TM) Start(env *engine.Env) error {
	t.e, t.log = env.Engine, env.Log
	t.server.init()
	t.client.init()
	t.timers.init()
	t.wait.init(&t.timers)
	var b [4]byte
	_, _ = rand.Read(b[:])
	t.prefix = "z9hG4bK" + hex.EncodeToString(b[:])
	return nil
}

// Stop ends the timer goroutine: pending transactions no longer time out or retransmit.
func (t *TM) Stop() error {
	t.timers.close()
	return nil
}

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }

func (t *TM) logger() *slog.Logger {
	if t.log == nil {
		return slog.Default()
	}
	return t.log
}

// Exports: KSR.tm.*.
func (t *TM) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "t_relay", Fn: func(m *engine.Msg) int { return t.relay(m, engine.ProtoNone, "") }},
		{Name: "t_relay_to_proto_addr", Fn: t.relayToProtoAddr},
		{Name: "t_relay_to_proto", Fn: t.relayToProto},
		{Name: "t_newtran", Fn: t.newtran},
		{Name: "t_reply", Fn: t.reply},
		{Name: "t_send_reply", Fn: t.reply},
		{Name: "t_check_trans", Fn: t.checkTrans},
		{Name: "t_is_set", Fn: t.isSet},
		{Name: "t_on_failure", Fn: func(m *engine.Msg, f string) int { ctxOf(m).onFailure = f; t.armTx(m); return 1 }},
		{Name: "t_on_branch", Fn: func(m *engine.Msg, f string) int { ctxOf(m).onBranch = f; t.armTx(m); return 1 }},
		{Name: "t_on_reply", Fn: func(m *engine.Msg, f string) int { ctxOf(m).onReply = f; t.armTx(m); return 1 }},
		{Name: "t_is_canceled", Fn: t.isCanceled},
		{Name: "t_any_timeout", Fn: t.anyTimeout},
		{Name: "t_branch_timeout", Fn: t.branchTimeout},
		{Name: "t_branch_replied", Fn: t.branchReplied},
		{Name: "t_any_replied", Fn: t.anyReplied},
		{Name: "t_set_fr", Fn: t.setFr},
		{Name: "t_reset_fr", Fn: func(m *engine.Msg) int { c := ctxOf(m); c.fr, c.frInv = 0, 0; return 1 }},
		{Name: "t_load_contacts", Fn: loadContacts},
		{Name: "t_next_contacts", Fn: nextContacts},
		{Name: "t_get_status_code", Fn: t.statusCode},
		{Name: "t_check_status", Fn: t.checkStatus},
		{Name: "t_release", Fn: func(m *engine.Msg) int { return 1 }},
		{Name: "t_drop_replies", Fn: func(m *engine.Msg, mode string) int { return dropReplies(m, mode) }},
		{Name: "t_drop_replies_all", Fn: func(m *engine.Msg) int { return dropReplies(m, "a") }},
	}, t.moreExports()...) // more.go
}

// PVs: $T_reply_code, $T_reply_reason, $T_branch_idx.
func (t *TM) PVs() []engine.PV {
	return append([]engine.PV{
		{Name: "T_reply_code", Get: func(m *engine.Msg, _ string) engine.Value {
			if c, _, ok := t.replyOf(m); ok {
				return engine.IntVal(int64(c))
			}
			return engine.IntVal(0) // Kamailio: 0 outside a reply or failure context
		}},
		{Name: "T_reply_reason", Get: func(m *engine.Msg, _ string) engine.Value {
			if _, r, ok := t.replyOf(m); ok {
				return engine.StrVal(r)
			}
			return engine.StrVal("") // Kamailio: "" outside a reply or failure context
		}},
		{Name: "T_branch_idx", Get: func(m *engine.Msg, _ string) engine.Value {
			// Kamailio (tmx): the branch in branch and reply routes; in a failure route the index the next
			// branch would get (branches of the transaction + appended ones); in a request route the number
			// of appended branches
			c, ok := m.ModState(ctxKey).(*msgCtx)
			switch {
			case ok && (c.route == routeBranch || c.route == routeReply || c.route == routeBranchFailure):
				return engine.IntVal(int64(c.branch))
			case ok && c.route == routeFailure && c.tx != nil:
				c.tx.mu.Lock()
				n := len(c.tx.branches)
				c.tx.unlock()
				return engine.IntVal(int64(n + len(m.Branches)))
			}
			return engine.IntVal(int64(len(m.Branches)))
		}},
	}, t.morePVs()...) // more.go
}

// RouteOf names the tm route a message is being run in: "failure", "branch", "reply" or "" (tmx).
func RouteOf(m *engine.Msg) string {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok {
		return ""
	}
	switch c.route {
	case routeFailure:
		return "failure"
	case routeBranch:
		return "branch"
	case routeReply:
		return "reply"
	}
	return ""
}

// Exists reports whether the request has a server transaction already (tmx.t_precheck_trans).
func (t *TM) Exists(m *engine.Msg) bool {
	if c, ok := m.ModState(ctxKey).(*msgCtx); ok && c.tx != nil {
		return false // its own transaction
	}
	return t.find(m, keyMethod(m)).ok
}

// RequestRouteDone ends what the request route left open in a transaction it created, as Kamailio's tm
// does at the end of the script (t_unref): when t_relay could not send any branch and the script did not
// answer, the caller gets 477/478 through the transaction (Kamailio's delayed kill_transaction); a
// transaction neither relayed nor answered ("script writer didn't release transaction") stays wt_timer
// long to absorb retransmissions, then goes, so it cannot live forever. A transaction whose relay failed
// and that the script answered statelessly is dropped at once, so a retransmission is routed again.
func (t *TM) RequestRouteDone(m *engine.Msg) {
	c, ok := m.ModState(ctxKey).(*msgCtx)
	if !ok || c.tx == nil || c.route != routeRequest || m.Relayed {
		return
	}
	x := c.tx
	x.mu.Lock()
	if x.final || x.removed || (len(x.branches) > 0 && !x.allBranchesFailed()) || x.tmr.armed() {
		x.unlock()
		return
	}
	switch {
	case m.Replied: // answered statelessly (sl_send_reply)
		x.unlock()
		x.unregister()
		return
	case c.relayErr != nil:
		t.kill(x, c.relayErr)
	default:
		t.logger().Warn("the script created a transaction and neither relayed nor answered it: released",
			"method", x.method, "call_id", callID(x.req))
		x.arm(ms(t.WaitTimer))
	}
	x.unlock()
}
