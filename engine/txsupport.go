package engine

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/siplua/siplua/engine/rawsip"
)

// Services for stateful modules (tm): detached copies of requests, routes run by name on a worker, sending
// to a chosen socket and address.

// TxReplier is implemented by a module that keeps transactions (tm): it answers a request through its
// transaction when one exists, so KSR.sl.send_reply is stateful when it can be (Kamailio's sl send_reply).
type TxReplier interface {
	TxReply(m *Msg, code int, reason string) (handled bool, err error)
}

// RouteDoneHook is implemented by a module that needs to know when the request route of a request has
// finished, whatever it did (tm releases a transaction the script created but neither relayed nor
// answered, as Kamailio's tm does when the script ends). It runs on the worker, after a 500 for a failed
// route was sent.
type RouteDoneHook interface{ RequestRouteDone(m *Msg) }

// TxFinalHook is implemented by modules that need the final reply a transaction sends upstream, relayed or
// local (Kamailio's TMCB_RESPONSE_OUT, which dialog and acc use: a call failed, or was answered). tm calls
// it once per transaction, for its first final reply, with the transaction's lock held: it must not block
// nor call back into tm. req is the transaction's request (do not keep it past the call), reply the bytes
// sent.
type TxFinalHook interface {
	TxFinal(req *Msg, code int, reply []byte)
}

// TxFinalHooks lists the loaded modules that watch transactions' final replies (tm calls them).
func (e *Engine) TxFinalHooks() []TxFinalHook {
	if e == nil {
		return nil
	}
	return e.txFinal
}

// TxReplier returns the module that answers through transactions, or nil.
func (e *Engine) TxReplier() TxReplier { return e.txReplier }

// Detach returns a copy of the message that outlives its routing (a transaction keeps it): buffers, header
// positions, edits, AVPs and branches are copied; the parsed message is shared (sipgo copies what it parses).
func (m *Msg) Detach() *Msg {
	if m.shared { // a detached message detached again: read its parse state under its lock
		m.parseMu.Lock()
		defer m.parseMu.Unlock()
	}
	// Not parsed here: most transactions never need sipgo's form, and it is the bulk of what one would
	// keep alive (1.8 KB of 5.7). The copy parses on first use, under its own lock.
	c := &Msg{
		Buf: slices.Clone(m.Buf), Raw: m.Raw, sipMsg: m.sipMsg, parse: m.parse, reply: m.reply,
		shared: true,
		Src:    m.Src, Proto: m.Proto, Local: m.Local, conn: m.conn,
		Flags: m.Flags, BFlags: m.BFlags, SFlags: m.SFlags, DstURI: m.DstURI, NewURI: m.NewURI, Path: m.Path, ruriQ: m.ruriQ,
		ReplyHdrs: slices.Clone(m.ReplyHdrs), ReplyBody: slices.Clone(m.ReplyBody), edits: slices.Clone(m.edits),
		ForceRport: m.ForceRport, ReplyNoConnect: m.ReplyNoConnect, ForwardNoConnect: m.ForwardNoConnect, LocalRport: m.LocalRport,
		Branches: slices.Clone(m.Branches), mod: slices.Clone(m.mod), E: m.E,
	}
	c.Raw.Hdrs = slices.Clone(m.Raw.Hdrs)
	if !m.reply { // set before the copy is shared: read-only from now on
		// a view of the copy's own buffer, which nothing writes in place (SetBuffer replaces it): no
		// second copy of the URI kept with the transaction
		if s, e, ok := rawsip.RequestURI(c.Buf, &c.Raw); ok && e > s {
			c.ruri = unsafe.String(&c.Buf[s], e-s)
		}
	}
	if m.AVPs != nil {
		c.AVPs = make(map[string][]Value, len(m.AVPs))
		for k, v := range m.AVPs {
			c.AVPs[k] = slices.Clone(v)
		}
	}
	return c
}

// CopyAVPs replaces m's AVPs with a copy of src's (a transaction's AVPs seen again in its failure route).
func (m *Msg) CopyAVPs(src map[string][]Value) { m.AVPs = maps.Clone(src) }

var errNoState = errors.New("no script state: the message is not being routed by a worker")

// CallRoute runs a script function by name with m as the current message, on the worker routing m.
func (m *Msg) CallRoute(fname string) error {
	if m.st() == nil {
		return errNoState
	}
	return m.st().Call(fname, m)
}

// ArgCaller is a State that can pass string arguments to a script function (luabind's does).
type ArgCaller interface {
	CallArgs(fname string, m *Msg, args ...string) error
}

// CallRouteArgs runs a script function by name with string arguments (Kamailio's KEMI event callbacks
// get the event name), on the worker routing m.
func (m *Msg) CallRouteArgs(fname string, args ...string) error {
	if m.st() == nil {
		return errNoState
	}
	if ac, ok := m.st().(ArgCaller); ok {
		return ac.CallArgs(fname, m, args...)
	}
	return m.st().Call(fname, m)
}

// RunReplyRoute runs ksr_reply_route for a reply on the worker routing it.
func (m *Msg) RunReplyRoute() error {
	if m.st() == nil {
		return errNoState
	}
	return m.st().ReplyRoute(m)
}

// RunOnWorker queues fn to run on a worker with m as its message (a failure route fired by a timer or by a
// reply): CallRoute works there. m is the caller's (it is not recycled). It never blocks the caller, which
// may be a worker holding a transaction lock: when the jobs channel is full the job waits in an overflow
// list (bounded by the transactions that exist) that workers move into the channel as it drains.
func (e *Engine) RunOnWorker(m *Msg, fn func(m *Msg)) {
	m.job = fn
	m.E = e
	select {
	case e.jobs <- m:
		return
	default:
	}
	e.jobMu.Lock()
	e.jobOverflow = append(e.jobOverflow, m)
	e.jobMu.Unlock()
	e.refillJobs() // the channel may have drained meanwhile
}

// Send writes b to dst over proto from socket local (picked by transport and family when nil or unfit),
// opening a TCP connection when none exists.
func (e *Engine) Send(proto Proto, local *Listener, dst netip.AddrPort, b []byte) error {
	return e.send(proto, local, dst, b, false)
}

// SendNotify is Send where a TCP message that fails after it was queued (the connection could not be made,
// or broke before it was written) is reported to onErr on the connection's goroutine. Neither ever waits on
// the network: TCP connects and writes happen on the connection's goroutine.
func (e *Engine) SendNotify(proto Proto, local *Listener, dst netip.AddrPort, b []byte, onErr func(error)) error {
	return e.sendNotify(proto, local, dst, b, false, onErr)
}

// SendReplyBytes sends a reply the proxy built (or relays) for request m: on m's TCP connection, or to its
// source per its Via (RFC 3261 §18.2.2, RFC 3581).
func (e *Engine) SendReplyBytes(m *Msg, b []byte) error { return e.sendReplyBytes(m, b) }

// CountRelayed and CountLocal update the reply counters for replies sent by a module.
func (e *Engine) CountRelayed(code int) { e.stats.replySent(OriginRelayed, code) }

// CountLocal counts a locally generated reply.
func (e *Engine) CountLocal(code int) { e.stats.replySent(OriginLocal, code) }

// CountForwarded counts a relayed request.
func (e *Engine) CountForwarded() { e.stats.forwarded.Add(1) }

// Generation is the script generation m's routes run on (nil when no worker routes m). A module that keeps
// state beyond the message (a transaction) holds it, and runs its later routes on it with UseGeneration.
func (m *Msg) Generation() *Generation { return m.gen }

// UseGeneration makes m's routes run on generation g from now on: at once when a worker is routing m, or
// when its job (RunOnWorker) runs. The caller holds g (Hold) until then. A nil g changes nothing.
func (m *Msg) UseGeneration(g *Generation) {
	if g == nil || m.gen == g {
		return
	}
	m.gen = g
}
