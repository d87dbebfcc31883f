package dialog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// The requests the module sends itself: BYE (timeout, dlg_bye, dlg.terminate) and keepalive OPTIONS.
// They are sent from the socket the side's messages came in on, to the first route of the side's route
// set or else to the address the side's INVITE or 2xx came from (which is right behind a NAT too), and
// retransmitted over UDP with T1 doubling until a reply comes. Their replies come back to this proxy
// (the Via is ours) and OnReply takes them by Via branch.

const t1 = 500 * time.Millisecond

// uacReq is one request in flight.
type uacReq struct {
	branch  string
	data    []byte
	dst     engine.Target
	local   *engine.Listener
	left    int // retransmissions left
	iv      time.Duration
	timer   *time.Timer
	onReply func(code int) // nil for BYE; keepalives count failures
	done    bool
}

// sendBye sends a BYE to the caller, the callee or both, as the other side would (From/To swapped
// toward the caller), with the next CSeq of that side.
func (d *Dialog) sendBye(info *Info, sd sides, caller, callee bool) {
	if caller {
		d.sendInDialog(info, sd, true, "BYE", nil)
	}
	if callee {
		d.sendInDialog(info, sd, false, "BYE", nil)
	}
}

// sendInDialog builds and sends an in-dialog request to one side (toCaller: as the callee would).
func (d *Dialog) sendInDialog(info *Info, sd sides, toCaller bool, method string, onReply func(int)) {
	if d.e == nil {
		return
	}
	var ruri, from, to string
	var routes []string
	var cseq uint32
	var dst engine.Target
	var local *engine.Listener
	if toCaller {
		ruri, from, to, routes = info.CallerContact, info.To, info.From, info.CallerRoutes
		cseq, dst, local = info.CalleeCSeq+1, sd.callerDst, sd.callerLocal
		if !dst.Addr.IsValid() {
			dst, _ = parseAddr(info.CallerAddr)
		}
	} else {
		ruri, from, to, routes = info.CalleeContact, info.From, info.To, info.CalleeRoutes
		if ruri == "" {
			ruri = info.RURI
		}
		cseq, dst, local = info.CallerCSeq+1, sd.calleeDst, sd.calleeLocal
		if !dst.Addr.IsValid() {
			dst, _ = parseAddr(info.CalleeAddr)
		}
	}
	d.bumpCSeq(info, toCaller, cseq) // the next request of that side must have a higher CSeq
	if len(routes) > 0 {
		t, err := d.e.ResolveURI(uriOf(routes[0]))
		if err != nil {
			d.logger().Info("in-dialog request not sent: first route not usable", "method", method,
				"route", routes[0], "err", err, "call_id", info.CallID)
			return
		}
		dst = t
	}
	if !dst.Addr.IsValid() {
		d.logger().Info("in-dialog request not sent: no address for the side", "method", method, "call_id", info.CallID)
		return
	}
	if local == nil || local.Proto != dst.Proto {
		local = d.e.ListenerFor(nil, dst)
	}
	if local == nil {
		d.logger().Info("in-dialog request not sent: no socket", "method", method, "dst", dst.Addr.String(), "call_id", info.CallID)
		return
	}
	branch := d.prefix + strconv.FormatUint(d.branch.Add(1), 36)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", strings.ToUpper(dst.Proto.String()), local.SentBy, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "Route: %s\r\n", r)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", from, to, info.CallID, cseq, method)
	if method == "BYE" {
		b.WriteString("Reason: SIP;cause=200;text=\"dialog ended by the proxy\"\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	r := &uacReq{branch: branch, data: []byte(b.String()), dst: dst, local: local, iv: t1, onReply: onReply}
	if dst.Proto == engine.UDP {
		r.left = d.ByeRetransmits
	}
	d.uacMu.Lock()
	d.uac[branch] = r
	d.uacMu.Unlock()
	d.transmit(r)
}

// bumpCSeq records the CSeq the module used for a side, in the live dialog if it is still there.
func (d *Dialog) bumpCSeq(info *Info, toCaller bool, cseq uint32) {
	if toCaller {
		info.CalleeCSeq = cseq
	} else {
		info.CallerCSeq = cseq
	}
	d.tab.mu.Lock()
	if x := d.tab.byID[uint64(info.HEntry)<<32|uint64(info.HID)]; x != nil {
		if toCaller {
			x.CalleeCSeq = max(x.CalleeCSeq, cseq)
		} else {
			x.CallerCSeq = max(x.CallerCSeq, cseq)
		}
	}
	d.tab.mu.Unlock()
}

// transmit sends r and arms its retransmission or, when none is left, its end.
func (d *Dialog) transmit(r *uacReq) {
	if err := d.e.Send(r.dst.Proto, r.local, r.dst.Addr, r.data); err != nil {
		d.logger().Info("in-dialog request not sent", "dst", r.dst.Addr.String(), "err", err)
	}
	d.uacMu.Lock()
	defer d.uacMu.Unlock()
	if r.done {
		return
	}
	wait := r.iv
	if r.left == 0 {
		wait = 64 * t1 / 2 // no more retransmissions: wait for a late answer, then give up (timer F)
		if r.dst.Proto != engine.UDP {
			wait = 64 * t1
		}
	}
	r.timer = time.AfterFunc(wait, func() { d.retransmit(r) })
}

func (d *Dialog) retransmit(r *uacReq) {
	d.uacMu.Lock()
	if r.done {
		d.uacMu.Unlock()
		return
	}
	if r.left == 0 { // no answer at all
		r.done = true
		delete(d.uac, r.branch)
		d.uacMu.Unlock()
		if r.onReply != nil {
			r.onReply(408)
		}
		return
	}
	r.left--
	r.iv = min(2*r.iv, 8*t1)
	d.uacMu.Unlock()
	d.transmit(r)
}

// ownReply takes a reply to a request the module sent (by the branch of its top Via).
func (d *Dialog) ownReply(m *engine.Msg) bool {
	i := m.Raw.Find(m.Buf, "via")
	if i < 0 {
		return false
	}
	raw := m.Raw.Hdrs[i].Value(m.Buf)
	if !strings.Contains(string(raw), d.prefix) {
		return false
	}
	v, err := engine.ParseVia(string(raw[:rawsip.FirstValueEnd(raw)]))
	if err != nil {
		return false
	}
	id, _, _, _ := rawsip.Param(v.Params, "branch")
	d.uacMu.Lock()
	r, ok := d.uac[id]
	code := m.StatusCode()
	if ok && code >= 200 {
		r.done = true
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(d.uac, id)
	}
	d.uacMu.Unlock()
	if ok && code >= 200 && r.onReply != nil {
		r.onReply(code)
	}
	return strings.HasPrefix(id, d.prefix) // ours, even if late: never relay it
}

// keepalives sends in-dialog OPTIONS every ka_interval to the sides of the dialogs that asked for them
// (dlg_set_property "ka-src"/"ka-dst"); a dialog whose keepalives fail ka_failed_limit times in a row
// (no answer, 408, 481) is ended with a BYE to both sides.
func (d *Dialog) keepalives() {
	defer d.wg.Done()
	tk := time.NewTicker(time.Duration(d.KaInterval) * time.Second)
	defer tk.Stop()
	for {
		select {
		case <-d.kaStop:
			return
		case <-tk.C:
		}
		type target struct {
			x      *dlg
			info   Info
			sd     sides
			src    bool
			dstSet bool
		}
		var list []target
		d.tab.mu.Lock()
		for _, x := range d.tab.byID {
			if x.State >= StateConfirmedNA && !x.ended && (x.KaSrc || x.KaDst) {
				list = append(list, target{x: x, info: x.snapshot(), sd: x.sides, src: x.KaSrc, dstSet: x.KaDst})
			}
		}
		d.tab.mu.Unlock()
		for _, t := range list {
			x := t.x
			onReply := func(code int) {
				if code != 408 && code != 481 {
					d.tab.mu.Lock()
					x.kaFailed = 0
					d.tab.mu.Unlock()
					return
				}
				d.tab.mu.Lock()
				x.kaFailed++
				failed := x.kaFailed >= d.KaFailedLimit && !x.ended
				info, sd := x.snapshot(), x.sides
				d.tab.mu.Unlock()
				if failed && d.end(x, "keepalive failed", nil) {
					d.sendBye(&info, sd, true, true)
				}
			}
			if t.src {
				d.sendInDialog(&t.info, t.sd, true, "OPTIONS", onReply)
			}
			if t.dstSet {
				d.sendInDialog(&t.info, t.sd, false, "OPTIONS", onReply)
			}
		}
	}
}
