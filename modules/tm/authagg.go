package tm

import (
	"github.com/siplua/siplua/engine/rawsip"
)

// aggregateAuth sends, when the chosen final reply is a 401 or 407 and more than one branch answered with a
// challenge, one reply built from the request that carries every WWW-Authenticate and Proxy-Authenticate
// of those branches (RFC 3261 §16.7 step 7: the client then answers all challenges at once). This is
// Kamailio's tm aggregate_challenges (on by default), reason text and To-tag as Kamailio builds them.
// Called with x.mu held; reports whether it sent the reply.
func (t *TM) aggregateAuth(x *tx, best *branch) bool {
	if !t.AggregateChallenges || (best.status != 401 && best.status != 407) {
		return false
	}
	var hdrs []byte
	n := 0
	var rm rawsip.Msg
	for _, b := range x.branches {
		if b.dropped || b.reply == nil || (b.status != 401 && b.status != 407) {
			continue
		}
		if rawsip.Scan(b.reply, &rm) != nil {
			continue
		}
		n++
		for _, h := range rm.Hdrs {
			if h.Is(b.reply, "www-authenticate") || h.Is(b.reply, "proxy-authenticate") {
				hdrs = append(hdrs, b.reply[h.Start:h.VEnd]...)
				hdrs = append(hdrs, "\r\n"...)
			}
		}
	}
	if n < 2 {
		return false
	}
	reason := "Unauthorized"
	if best.status == 407 {
		reason = "Proxy Authentication Required"
	}
	saved := x.req.ReplyHdrs
	x.req.ReplyHdrs = append(append([]byte(nil), saved...), hdrs...)
	x.localReply(int(best.status), reason)
	x.req.ReplyHdrs = saved
	return true
}
