package sl

import (
	"bytes"
	"fmt"

	"github.com/siplua/siplua/engine"
)

// The rest of Kamailio 5.6's sl KEMI functions.

func (s *SL) moreExports() []engine.Export {
	return []engine.Export{
		{Name: "send_reply_mode", Fn: s.sendReplyMode},
		{Name: "sl_forward_reply", Fn: s.forwardReply},
	}
}

// sendReplyMode is send_reply_mode(code, reason, mode): send_reply with Kamailio's send flags: 2 never opens
// a connection for it (only an existing one is used); 1 (close the connection after sending) is accepted,
// siplua keeps the connection for its lifetime.
func (s *SL) sendReplyMode(m *engine.Msg, code int, reason string, mode int) int {
	if mode&2 != 0 {
		prev := m.ReplyNoConnect
		m.ReplyNoConnect = true
		defer func() { m.ReplyNoConnect = prev }()
	}
	return s.sendReplyTx(m, code, reason)
}

// forwardReply is sl_forward_reply(code, reason) in a reply route: the received reply is relayed statelessly
// now, with its status code (same class only, as Kamailio) and reason replaced when given ("" keeps them).
// 1, -1 when the message is no reply, the code is of another class, or it could not be sent.
func (s *SL) forwardReply(m *engine.Msg, code, reason string) int {
	if !m.IsReply() {
		return -1
	}
	buf := m.Buf
	if code != "" || reason != "" {
		orig := m.StatusCode()
		c := orig
		if code != "" {
			if _, err := fmt.Sscanf(code, "%d", &c); err != nil || c < 100 || c > 699 || c/100 != orig/100 {
				s.logger().Warn("sl_forward_reply: the new code must be of the reply's class", "code", code, "orig", orig)
				return -1
			}
		}
		r := reason
		if r == "" {
			r = m.Reason()
		}
		eol := bytes.Index(buf, []byte("\r\n"))
		if eol < 0 {
			return -1
		}
		nb := make([]byte, 0, len(buf)+len(r))
		nb = fmt.Appendf(nb, "SIP/2.0 %03d %s", c, r)
		buf = append(nb, buf[eol:]...)
	}
	fm, err := m.E.NewMsg(buf, m.Src, m.Proto)
	if err != nil {
		s.logger().Warn("sl_forward_reply: reply not usable", "err", err)
		return -1
	}
	fm.Local = m.Local
	if err := m.E.RelayReply(fm); err != nil {
		s.logger().Info("sl_forward_reply: not sent", "err", err)
		return -1
	}
	return 1
}
