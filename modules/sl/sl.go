// Package sl sends stateless replies (Kamailio's sl module).
package sl

import (
	"log/slog"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "sl", New: func() engine.Instance { return &SL{} }})
}

// SL has no parameters yet.
type SL struct {
	log *slog.Logger
}

// Start keeps the module logger.
func (s *SL) Start(env *engine.Env) error { s.log = env.Log; return nil }

// Exports: KSR.sl.*.
func (s *SL) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "sl_send_reply", Fn: s.sendReply},
		{Name: "send_reply", Fn: s.sendReplyTx},
		{Name: "sl_reply_error", Fn: s.replyError},
	}, s.moreExports()...) // more.go
}

func (s *SL) sendReply(m *engine.Msg, code int, reason string) int {
	if code < 100 || code > 699 {
		s.logger().Warn("sl_send_reply: invalid status code", "code", code)
		return -1
	}
	if err := m.SendReply(code, reason); err != nil {
		s.logger().Warn("sl_send_reply failed", "code", code, "err", err)
		return -1
	}
	return 1
}

// sendReplyTx is Kamailio's send_reply: through the request's transaction when tm has one, else stateless.
func (s *SL) sendReplyTx(m *engine.Msg, code int, reason string) int {
	if tr := m.E.TxReplier(); tr != nil && code >= 100 && code <= 699 {
		if ok, err := tr.TxReply(m, code, reason); ok {
			if err != nil {
				s.logger().Warn("send_reply failed", "code", code, "err", err)
				return -1
			}
			return 1
		}
	}
	return s.sendReply(m, code, reason)
}

// replyError is Kamailio's sl_reply_error. Under KEMI no action leaves an error code behind (prev_ser_error
// stays E_UNSPEC), so Kamailio 5.6 always answers with this text, which is reproduced here.
func (s *SL) replyError(m *engine.Msg) int {
	s.logger().Error("stateless error reply used: " + errUnspecReason)
	return s.sendReply(m, 500, errUnspecReason)
}

const errUnspecReason = "I'm terribly sorry, server error occurred (1/SL)"

func (s *SL) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}
