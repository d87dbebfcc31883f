// Package xhttp holds Kamailio's xhttp KEMI functions for scripts written for Kamailio. Kamailio's xhttp
// answers HTTP requests that arrive on its SIP TCP ports (event_route[xhttp:request]); siplua serves no
// HTTP on its SIP ports: its HTTP servers are [web] and [metrics], and JSON-RPC is the ctl socket. So no
// route ever handles an HTTP request, and the functions do what Kamailio 5.6 does with a SIP message.
package xhttp

import (
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "xhttp", New: func() engine.Instance { return &XHTTP{} }})
}

// XHTTP has no parameters (Kamailio's url_match/url_skip select HTTP requests, which siplua never routes).
type XHTTP struct{}

// Exports: KSR.xhttp.* with Kamailio 5.6's KEMI signatures.
func (*XHTTP) Exports() []engine.Export {
	return []engine.Export{
		{Name: "get_hu", Fn: getHU},
		{Name: "xhttp_reply", Fn: reply},
	}
}

// getHU is Kamailio's get_hu(): it returns the URI of the request's first line (the HTTP URL of an
// HTTP request); for a SIP request that is its original Request-URI, which siplua returns too. A reply
// has none: "".
func getHU(m *engine.Msg) string {
	if !m.IsRequest() {
		return ""
	}
	s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw)
	if !ok {
		return ""
	}
	return string(m.Buf[s:e])
}

// reply is xhttp_reply(code, reason, ctype, body). For an HTTP request Kamailio answers HTTP; for a SIP
// request (the only kind a siplua route sees) it sends, as Kamailio 5.6 does, a stateless SIP reply with
// the code and reason, and the body with its Content-Type (also for an empty body, as Kamailio): 1 when sent, -1
// when not (a reply, an ACK, a bad code, a send error).
func reply(m *engine.Msg, code int, reason, ctype, body string) int {
	if code < 100 || code > 699 || !m.IsRequest() || m.IsAck() {
		return -1
	}
	var err error
	if body == "" {
		// Kamailio adds the Content-Type of an empty body too; only this reply gets it here
		n := len(m.ReplyHdrs)
		if ctype != "" {
			m.ReplyHdrs = append(m.ReplyHdrs, "Content-Type: "+ctype+"\r\n"...)
		}
		err = m.SendReply(code, reason)
		m.ReplyHdrs = m.ReplyHdrs[:n]
	} else {
		err = m.SendReplyBody(code, reason, []byte(body), ctype)
	}
	if err != nil {
		return -1
	}
	return 1
}
