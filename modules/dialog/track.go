package dialog

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// runtime is what a dialog keeps that is not in Info (not written to Redis): the sockets and addresses of
// both sides, to send BYE and keepalives from the right socket.
type sides struct {
	callerLocal, calleeLocal *engine.Listener
	callerDst, calleeDst     engine.Target
}

// msgState is the dialog module's state for one message (engine.Msg.ModState("dialog")).
type msgState struct {
	x       *dlg
	dir     int
	created bool // dlg_manage created the dialog with this message (the initial INVITE)
}

func stateOf(m *engine.Msg) *msgState {
	st, _ := m.ModState(modName).(*msgState)
	return st
}

func setState(m *engine.Msg, st *msgState) {
	m.SetModState(modName, st)
}

func uriOf(v string) string {
	_, u, _, _ := rawsip.NameAddr(v)
	return u
}

// cseqOf parses "123 INVITE".
func cseqOf(v string) (uint32, string) {
	n, meth, _ := strings.Cut(strings.TrimSpace(v), " ")
	i, _ := strconv.ParseUint(n, 10, 32)
	return uint32(i), strings.TrimSpace(meth)
}

// splitList splits a header value list at the commas outside <> and quotes (Record-Route values).
func splitList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			if s := strings.TrimSpace(v[start:i]); s != "" {
				out = append(out, s)
			}
			start = i + 1
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

func recordRoutes(m *engine.Msg) []string {
	var out []string
	for _, v := range m.Headers("record-route") {
		out = append(out, splitList(v)...)
	}
	return out
}

func contactURI(m *engine.Msg) string {
	v := m.HeaderValue("contact")
	if v == "" {
		return ""
	}
	if l := splitList(v); len(l) > 0 {
		return uriOf(l[0])
	}
	return ""
}

func addrString(p engine.Proto, a netip.AddrPort) string {
	return strings.ToLower(p.String()) + ":" + a.String()
}

func parseAddr(s string) (engine.Target, bool) {
	p, a, ok := strings.Cut(s, ":")
	if !ok {
		return engine.Target{}, false
	}
	proto, ok := engine.ParseProto(p)
	ap, err := netip.ParseAddrPort(a)
	if !ok || err != nil {
		return engine.Target{}, false
	}
	return engine.Target{Proto: proto, Addr: ap}, true
}

// dlgManage is dlg_manage(): on an initial INVITE it creates the dialog (once: a retransmission finds it);
// on an in-dialog request it binds the message to its dialog. 1 tracked, -1 not (not an INVITE, no dialog).
func (d *Dialog) dlgManage(m *engine.Msg) int {
	if !m.IsRequest() {
		return -1
	}
	if st := stateOf(m); st != nil && st.x != nil {
		return 1
	}
	if _, has := m.ToTag(); has {
		x, dir := d.matchMsg(m)
		if x == nil {
			return -1
		}
		setState(m, &msgState{x: x, dir: dir})
		return 1
	}
	if m.Method() != "INVITE" {
		return -1
	}
	callID := m.HeaderValue("call-id")
	from := m.HeaderValue("from")
	if callID == "" || from == "" {
		return -1
	}
	ftag := rawsip.TagOf(from)
	d.tab.mu.Lock()
	if x, _ := d.tab.match(callID, ftag, ""); x != nil && x.State < StateConfirmedNA {
		d.tab.mu.Unlock()
		setState(m, &msgState{x: x, dir: dirDownstream})
		return 1
	}
	x := d.newDialog(m, callID, from, ftag)
	d.tab.add(x)
	x.timer = time.AfterFunc(time.Duration(d.EarlyTimeout)*time.Second, func() { d.onTimer(x) })
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.stats.early.Add(1)
	d.stats.processed.Add(1)
	setState(m, &msgState{x: x, dir: dirDownstream, created: true})
	d.save(info)
	return 1
}

// newDialog builds the dialog of an initial INVITE. Called with tab.mu held (for the h_id sequence order).
func (d *Dialog) newDialog(m *engine.Msg, callID, from, ftag string) *dlg {
	to := m.HeaderValue("to")
	cs, _ := cseqOf(m.HeaderValue("cseq"))
	now := time.Now()
	x := &dlg{Info: Info{
		HEntry: hEntry(callID), HID: d.seq.Add(1), State: StateUnconfirmed,
		CallID: callID, From: from, To: to, FromURI: uriOf(from), ToURI: uriOf(to), FromTag: ftag,
		RURI: m.RURI(), CallerContact: contactURI(m), CallerCSeq: cs,
		CallerRoutes: recordRoutes(m), CallerAddr: addrString(m.Proto, m.Src),
		Created: now.Unix(), Timeout: d.DefaultTimeout, TimeoutBye: d.SendBye,
	}}
	if m.Local != nil {
		x.CallerSock = addrString(m.Local.Proto, m.Local.Addr)
	}
	x.sides.callerLocal = m.Local
	x.sides.callerDst = engine.Target{Proto: m.Proto, Addr: m.Src}
	return x
}

// matchMsg finds the dialog of an in-dialog message by Call-ID and tags.
func (d *Dialog) matchMsg(m *engine.Msg) (*dlg, int) {
	callID := m.HeaderValue("call-id")
	if callID == "" {
		return nil, 0
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	if len(d.tab.byCallID[callID]) == 0 {
		return nil, 0
	}
	ttag, _ := m.ToTag()
	return d.tab.match(callID, rawsip.TagOf(m.HeaderValue("from")), ttag)
}

// current is the dialog of the message: the one dlg_manage or dlg_get bound, else the one its Call-ID
// and tags match.
func (d *Dialog) current(m *engine.Msg) (*dlg, int) {
	if st := stateOf(m); st != nil && st.x != nil {
		return st.x, st.dir
	}
	if d.tab.byCallID == nil {
		return nil, 0
	}
	x, dir := d.matchMsg(m)
	if x != nil {
		setState(m, &msgState{x: x, dir: dir})
	}
	return x, dir
}

// RequestRouteDone (engine.RouteDoneHook): an initial INVITE not relayed loses its dialog, one with
// dlg_flag set gets one; an in-dialog request updates its dialog (ACK confirms, a relayed BYE ends it).
func (d *Dialog) RequestRouteDone(m *engine.Msg) {
	if d.tab.byCallID == nil {
		return
	}
	st := stateOf(m)
	if st != nil && st.created {
		if !m.Relayed || m.Dropped {
			d.failDialog(st.x, 0, "not relayed", m)
		}
		return
	}
	ttag, has := m.ToTag()
	if !has {
		if st == nil && d.DlgFlag >= 0 && m.Flags&(1<<uint(d.DlgFlag)) != 0 && m.Relayed && m.Method() == "INVITE" &&
			d.dlgManage(m) == 1 {
			x := stateOf(m).x
			d.tab.mu.Lock()
			if a := d.tab.takeLate(x.CallID, x.FromTag); a != nil && !x.ended && x.State < StateConfirmedNA {
				d.confirm(x, a) // unlocks
			} else {
				d.tab.mu.Unlock()
			}
		}
		return
	}
	callID := m.HeaderValue("call-id")
	d.tab.mu.Lock()
	if len(d.tab.byCallID[callID]) == 0 {
		d.tab.mu.Unlock()
		return
	}
	x, dir := d.tab.match(callID, rawsip.TagOf(m.HeaderValue("from")), ttag)
	if x == nil || x.ended {
		d.tab.mu.Unlock()
		return
	}
	cs, meth := cseqOf(m.HeaderValue("cseq"))
	if meth != "ACK" && meth != "CANCEL" {
		if dir == dirDownstream && cs > x.CallerCSeq {
			x.CallerCSeq = cs
		} else if dir == dirUpstream && cs > x.CalleeCSeq {
			x.CalleeCSeq = cs
		}
	}
	switch {
	case meth == "ACK" && x.State == StateConfirmedNA:
		x.State = StateConfirmed
	case meth == "BYE" && m.Relayed && !m.Dropped:
		d.tab.mu.Unlock()
		d.end(x, "bye", m)
		return
	}
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
}

// OnReply (engine.ReplyHook) sees every received reply before tm: replies to the module's own BYE and
// OPTIONS are taken; replies to a dialog's INVITE move it to early or confirmed, and go on to tm.
func (d *Dialog) OnReply(m *engine.Msg) bool {
	if d.tab.byCallID == nil {
		return false
	}
	if d.ownReply(m) {
		return true
	}
	cs := m.HeaderValue("cseq")
	if !strings.HasSuffix(cs, "INVITE") {
		return false
	}
	callID := m.HeaderValue("call-id")
	code := m.StatusCode()
	d.tab.mu.Lock()
	if len(d.tab.byCallID[callID]) == 0 {
		if d.DlgFlag >= 0 && code >= 200 && code < 300 {
			// dlg_flag dialogs are created when the INVITE's route ends, which a fast 2xx (relayed by
			// another worker) can beat: keep it for that moment
			d.tab.keepLate(callID, rawsip.TagOf(m.HeaderValue("from")), d.answerOf(m))
		}
		d.tab.mu.Unlock()
		return false
	}
	x, _ := d.tab.match(callID, rawsip.TagOf(m.HeaderValue("from")), "")
	if x == nil || x.ended || x.State >= StateConfirmedNA || code < 101 || code >= 300 {
		d.tab.mu.Unlock()
		return false
	}
	if code < 200 {
		if x.State == StateUnconfirmed && rawsip.TagOf(m.HeaderValue("to")) != "" {
			x.State = StateEarly
		}
		d.tab.mu.Unlock()
		return false
	}
	d.confirm(x, d.answerOf(m)) // unlocks
	return false
}

// answer is what a dialog keeps of its 2xx.
type answer struct {
	to, contact string
	rr          []string
	src         engine.Target
	local       *engine.Listener
	code        int
	reason      string
	at          time.Time
}

func (d *Dialog) answerOf(m *engine.Msg) *answer {
	return &answer{to: m.HeaderValue("to"), contact: contactURI(m), rr: recordRoutes(m),
		src: engine.Target{Proto: m.Proto, Addr: m.Src}, local: m.Local, code: m.StatusCode(), reason: m.Reason(), at: time.Now()}
}

// confirm moves a dialog to confirmed_not_acked with its 2xx. Called with tab.mu held; releases it.
func (d *Dialog) confirm(x *dlg, a *answer) {
	x.State = StateConfirmedNA
	x.To, x.ToTag, x.ToURI = a.to, rawsip.TagOf(a.to), uriOf(a.to)
	x.CalleeContact = a.contact
	x.CalleeRoutes = d.calleeRoutes(a.rr, len(x.CallerRoutes))
	x.CalleeAddr = addrString(a.src.Proto, a.src.Addr)
	if a.local != nil {
		x.CalleeSock = addrString(a.local.Proto, a.local.Addr)
	}
	x.sides.calleeLocal = a.local
	x.sides.calleeDst = a.src
	x.Start, x.StartNS = a.at.Unix(), a.at.UnixNano()
	d.armLocked(x, time.Duration(x.Timeout)*time.Second-time.Since(a.at))
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.stats.early.Add(-1)
	d.stats.active.Add(1)
	d.save(info)
	d.emit(Event{Kind: EvConfirmed, Dlg: info, Code: a.code, Reason: a.reason})
}

// calleeRoutes is the route set toward the callee from the Record-Route list of its 2xx: the entries the
// callee side added (before this proxy's own and the caller side's ones), nearest first.
func (d *Dialog) calleeRoutes(rr []string, callerSide int) []string {
	n := len(rr) - callerSide
	if n <= 0 {
		return nil
	}
	down := slices.Clone(rr[:n])
	for len(down) > 0 && d.isMine(down[len(down)-1]) {
		down = down[:len(down)-1]
	}
	slices.Reverse(down)
	return down
}

func (d *Dialog) isMine(route string) bool {
	if d.e == nil {
		return false
	}
	dst, err := engine.ParseDest(uriOf(route))
	if err != nil {
		return false
	}
	port := dst.Port
	if port == 0 {
		port = 5060
	}
	return d.e.IsMyself(dst.Host, port)
}

// TxFinal (engine.TxFinalHook): a negative final reply to a dialog's INVITE fails the dialog.
func (d *Dialog) TxFinal(req *engine.Msg, code int, reply []byte) {
	if code < 300 || d.tab.byCallID == nil || req.Method() != "INVITE" {
		return
	}
	if _, has := req.ToTag(); has {
		return
	}
	callID := req.HeaderValue("call-id")
	d.tab.mu.Lock()
	if len(d.tab.byCallID[callID]) == 0 {
		d.tab.mu.Unlock()
		return
	}
	x, _ := d.tab.match(callID, rawsip.TagOf(req.HeaderValue("from")), "")
	d.tab.mu.Unlock()
	if x == nil {
		return
	}
	reason := ""
	if i := bytes.IndexByte(reply, '\n'); i > 12 {
		reason = strings.TrimSpace(string(reply[12:i]))
	}
	d.failDialog(x, code, reason, req)
}

// failDialog ends a dialog that was never confirmed.
func (d *Dialog) failDialog(x *dlg, code int, reason string, req *engine.Msg) {
	d.tab.mu.Lock()
	if x.ended || x.State >= StateConfirmedNA {
		d.tab.mu.Unlock()
		return
	}
	x.ended, x.State = true, StateDeleted
	d.tab.remove(x)
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.stats.early.Add(-1)
	d.stats.failed.Add(1)
	d.forget(info)
	d.emit(Event{Kind: EvFailed, Dlg: info, Code: code, Reason: reason, Req: req})
}

// end ends a confirmed dialog (BYE, timeout, dlg.terminate, dlg_bye).
func (d *Dialog) end(x *dlg, reason string, req *engine.Msg) bool {
	d.tab.mu.Lock()
	if x.ended {
		d.tab.mu.Unlock()
		return false
	}
	if x.State < StateConfirmedNA {
		d.tab.mu.Unlock()
		d.failDialog(x, 0, reason, req)
		return true
	}
	x.ended, x.State = true, StateDeleted
	d.tab.remove(x)
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.stats.active.Add(-1)
	d.forget(info)
	var dur time.Duration
	if info.StartNS > 0 {
		dur = time.Since(time.Unix(0, info.StartNS))
	}
	d.emit(Event{Kind: EvEnded, Dlg: info, Reason: reason, Req: req, Duration: dur})
	return true
}

// armLocked (re)starts a dialog's lifetime timer. Called with tab.mu held.
func (d *Dialog) armLocked(x *dlg, after time.Duration) {
	x.expireAt = time.Now().Add(after)
	if x.timer != nil {
		x.timer.Stop()
	}
	x.timer = time.AfterFunc(after, func() { d.onTimer(x) })
}

// onTimer ends a dialog whose lifetime (or early timeout) is over, with a BYE to both sides when
// send_bye or $dlg_ctx(timeout_bye) says so.
func (d *Dialog) onTimer(x *dlg) {
	d.tab.mu.Lock()
	if x.ended || time.Now().Before(x.expireAt.Add(-time.Millisecond)) && x.State >= StateConfirmedNA {
		d.tab.mu.Unlock()
		return
	}
	early := x.State < StateConfirmedNA
	bye := x.TimeoutBye
	info, sd := x.snapshot(), x.sides
	d.tab.mu.Unlock()
	if early {
		d.failDialog(x, 408, "early timeout", nil)
		return
	}
	if !d.end(x, "timeout", nil) {
		return
	}
	d.stats.expired.Add(1)
	d.logger().Info("dialog timed out", "call_id", info.CallID, "send_bye", bye)
	if bye {
		d.sendBye(&info, sd, true, true)
	}
}
