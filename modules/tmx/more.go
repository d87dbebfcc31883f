package tmx

import (
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/tm"
)

// The rest of Kamailio 5.6's tmx KEMI functions: suspending and continuing a transaction, dropping it,
// cancelling and answering transactions by Call-ID. The transactions are tm's: each function finds the tm
// module of the running configuration (-1 without it).

func tmOf(m *engine.Msg) *tm.TM {
	if m == nil || m.E == nil {
		return nil
	}
	inst, ok := m.E.Module("tm")
	if !ok {
		return nil
	}
	t, _ := inst.(*tm.TM)
	return t
}

// withTM runs f with the tm module, -1 when it is not loaded.
func withTM(f func(t *tm.TM, m *engine.Msg) int) func(*engine.Msg) int {
	return func(m *engine.Msg) int {
		t := tmOf(m)
		if t == nil {
			return -1
		}
		return f(t, m)
	}
}

func moreExports() []engine.Export {
	return []engine.Export{
		{Name: "t_suspend", Fn: withTM(func(t *tm.TM, m *engine.Msg) int { return t.KSuspend(m) })},
		{Name: "t_continue", Fn: func(m *engine.Msg, index, label int, route string) int {
			if t := tmOf(m); t != nil {
				return t.KContinue(m, index, label, route)
			}
			return -1
		}},
		{Name: "t_drop", Fn: withTM(func(t *tm.TM, m *engine.Msg) int { return t.KDrop(m, 0) })},
		{Name: "t_drop_rcode", Fn: func(m *engine.Msg, code int) int {
			if t := tmOf(m); t != nil {
				return t.KDrop(m, code)
			}
			return -1
		}},
		{Name: "t_flush_flags", Fn: withTM(func(t *tm.TM, m *engine.Msg) int { return t.KFlushFlags(m) })},
		// siplua has no extended (xavp-backed) flags: nothing to flush
		{Name: "t_flush_xflags", Fn: withTM(func(t *tm.TM, m *engine.Msg) int { return 1 })},
		{Name: "t_is_request_route", Fn: tm.KIsRequestRoute},
		{Name: "t_cancel_branches", Fn: func(m *engine.Msg, mode string) int {
			if t := tmOf(m); t != nil {
				return t.KCancelBranches(m, mode)
			}
			return -1
		}},
		{Name: "t_cancel_callid", Fn: func(m *engine.Msg, callid, cseq string, flag int) int {
			if t := tmOf(m); t != nil {
				return t.KCancelCallID(m, callid, cseq, flag, 0)
			}
			return -1
		}},
		{Name: "t_cancel_callid_reason", Fn: func(m *engine.Msg, callid, cseq string, flag, rcode int) int {
			if t := tmOf(m); t != nil {
				return t.KCancelCallID(m, callid, cseq, flag, rcode)
			}
			return -1
		}},
		{Name: "t_reply_callid", Fn: func(m *engine.Msg, callid, cseq string, code int, reason string) int {
			if t := tmOf(m); t != nil {
				return t.KReplyCallID(m, callid, cseq, code, reason)
			}
			return -1
		}},
		{Name: "t_reuse_branch", Fn: withTM(func(t *tm.TM, m *engine.Msg) int { return t.KReuseBranch(m) })},
	}
}
