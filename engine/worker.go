package engine

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine/rawsip"
)

type worker struct {
	id   int
	vars map[string]Value // $var: per worker, kept across messages as in Kamailio
	gen  *Generation      // the generation it routes new messages with (it holds a reference)
	wake chan struct{}    // a reload asks an idle worker to let go of its old state
	// budget bounds the Lua calls of the message being processed ([lua] route_timeout).
	budget *budget
	// snd is the send the onsend callback is deciding for message sndMsg (kemi.go).
	snd    *SendInfo
	sndMsg *Msg

	busy  atomic.Bool   // for core.workers
	genID atomic.Uint64 // the generation this worker routes with, for core.workers
}

// enqueue hands a message to the workers. Replies, ACK and CANCEL go to the priority queue, which workers
// serve first: they finish work already under way, so overload never costs an established call. A new
// request that finds the queue full gets 503 with Retry-After ([core] overload = "503", counted) or is
// dropped ("drop": UDP drops and counts, the client retransmits; TCP waits, pushing back on the sender).
func (e *Engine) enqueue(m *Msg, block bool) {
	if isPriority(m.Buf) {
		select {
		case e.prio <- m:
			return
		default:
		}
		if block {
			select {
			case e.prio <- m:
			case <-e.stopped:
				m.release()
			}
			return
		}
		// The priority queue is four times the request queue and served first: it fills only when the
		// workers are stuck, and then the loss is counted and logged, never silent.
		if n := e.stats.dropPrio.Add(1); n&(n-1) == 0 { // logged at 1, 2, 4, 8… so a flood cannot flood the log
			e.log.Warn("priority queue full: reply, ACK or CANCEL dropped", "src", m.Src.String(), "dropped", n)
		}
		m.release()
		return
	}
	select {
	case e.queue <- m:
		return
	default:
	}
	// Only new work is refused: a request inside a dialog (To has a tag: BYE, re-INVITE, UPDATE…) ends or
	// keeps up a call that was accepted, so it goes to the priority queue instead of getting 503 (a phone
	// that does not retry a BYE would leave the other side's call hanging). Checked only when full.
	if inDialog(m.Buf) {
		select {
		case e.prio <- m:
			return
		default:
		}
	}
	if e.cfg.Core.Overload == "503" {
		e.rejectOverload(m)
		return
	}
	if block {
		select {
		case e.queue <- m:
		case <-e.stopped:
			m.release()
		}
		return
	}
	e.stats.dropQueue.Add(1)
	m.release()
}

// isPriority tells replies, ACK and CANCEL from requests that start new work, by the first bytes.
func isPriority(b []byte) bool {
	return bytes.HasPrefix(b, []byte("SIP/")) || bytes.HasPrefix(b, []byte("ACK ")) || bytes.HasPrefix(b, []byte("CANCEL "))
}

// inDialog reports whether a request's To header has a tag, on the raw bytes (the message is not scanned
// yet): header lines up to the blank line, To or its compact form t, then ";tag=" in that line.
func inDialog(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
		if len(b) == 0 || b[0] == '\r' || b[0] == '\n' {
			return false // end of headers
		}
		name := 0
		if len(b) > 1 && (b[0]|0x20) == 't' && (b[1]|0x20) == 'o' {
			name = 2
		} else if (b[0] | 0x20) == 't' {
			name = 1
		} else {
			continue
		}
		rest := b[name:]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			rest = rest[1:]
		}
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			end = len(rest)
		}
		line := rest[:end]
		angle, quote := false, false // a ;tag inside <URI> or a quoted display name is not the header's
		for j := 0; j+5 <= len(line); j++ {
			switch c := line[j]; {
			case quote:
				if c == '"' {
					quote = false
				}
				continue
			case c == '"':
				quote = true
				continue
			case c == '<':
				angle = true
			case c == '>':
				angle = false
			}
			if line[j] == ';' && !angle {
				k := j + 1
				for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
					k++
				}
				if k+4 <= len(line) && (line[k]|0x20) == 't' && (line[k+1]|0x20) == 'a' && (line[k+2]|0x20) == 'g' {
					k += 3
					for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
						k++
					}
					if k < len(line) && line[k] == '=' {
						return true
					}
				}
			}
		}
		return false
	}
	return false
}

// rejectOverload answers a request the queue has no room for with 503 and Retry-After (RFC 3261 §21.5.4),
// on the reader's goroutine: scanning the headers and building the reply from its bytes costs a few
// microseconds, far less than routing it.
func (e *Engine) rejectOverload(m *Msg) {
	defer m.release()
	m.E = e
	if err := m.scan(); err != nil || m.Raw.Find(m.Buf, "via") < 0 {
		e.stats.dropQueue.Add(1)
		return
	}
	m.ReplyHdrs = append(m.ReplyHdrs[:0], "Retry-After: "...)
	m.ReplyHdrs = strconv.AppendInt(m.ReplyHdrs, int64(e.cfg.Core.RetryAfter), 10)
	m.ReplyHdrs = append(m.ReplyHdrs, "\r\n"...)
	bp := getBuf()
	out := m.BuildReply((*bp)[:0], 503, "Service Unavailable", nil, "")
	if err := e.sendReplyBytes(m, out); err == nil {
		e.stats.overload.Add(1)
		e.stats.replySent(OriginLocal, 503)
	} else {
		e.stats.dropQueue.Add(1)
	}
	*bp = out
	putBuf(bp)
}

func (e *Engine) runWorker(w *worker) {
	defer e.wg.Done()
	w.state(e) // take a state now, so core.workers shows the generation from the start
	for {
		// Jobs first, then replies/ACK/CANCEL, then new requests: a select over ready channels picks at
		// random, so the order is made by trying each one without waiting.
		select {
		case m := <-e.jobs:
			e.refillJobs()
			e.run(w, m)
			continue
		default:
		}
		select {
		case m := <-e.prio:
			e.run(w, m)
			continue
		default:
		}
		select {
		case m := <-e.jobs:
			e.refillJobs()
			e.run(w, m)
		case m := <-e.prio:
			e.run(w, m)
		case m := <-e.queue:
			e.run(w, m)
		case <-w.wake:
			w.state(e)
		case <-e.stopped:
			for { // drain what was queued before the readers stopped
				select {
				case m := <-e.jobs:
					e.refillJobs()
					e.safeProcess(w, m)
				case m := <-e.prio:
					e.safeProcess(w, m)
				case m := <-e.queue:
					e.safeProcess(w, m)
				default:
					return
				}
			}
		}
	}
}

func (e *Engine) run(w *worker, m *Msg) {
	e.stats.busy.Add(1)
	w.busy.Store(true)
	e.safeProcess(w, m)
	w.busy.Store(false)
	e.stats.busy.Add(-1)
}

// refillJobs moves jobs that found the jobs channel full into it, as room frees up.
func (e *Engine) refillJobs() {
	e.jobMu.Lock()
	defer e.jobMu.Unlock()
	for len(e.jobOverflow) > 0 {
		select {
		case e.jobs <- e.jobOverflow[0]:
			e.jobOverflow[0] = nil
			e.jobOverflow = e.jobOverflow[1:]
		default:
			return
		}
	}
}

// safeProcess keeps a worker alive through a bug on some message's path: the message is lost, logged and
// counted, and the next one is served.
func (e *Engine) safeProcess(w *worker, m *Msg) {
	defer func() {
		if r := recover(); r != nil {
			e.stats.luaErrors.Add(1)
			e.log.Error("internal error while routing a message; message dropped", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	e.process(w, m)
}

// state returns this worker's script state of the current generation. Moving to a new generation takes a
// reference on it and drops the one on the previous generation, which closes when nothing else (another
// worker, a transaction) holds it.
func (w *worker) state(e *Engine) State {
	g := e.gen.Load()
	if w.gen != g {
		// Hold fails only when g was replaced and released meanwhile: the newer one is in e.gen.
		for !g.Hold() {
			g = e.gen.Load()
		}
		if old := w.gen; old != nil {
			old.Release()
		}
		w.gen = g
		w.genID.Store(g.id)
	}
	return g.states[w.id]
}

func (e *Engine) process(w *worker, m *Msg) {
	now := time.Now()
	w.budget.begin(int64(now.Sub(e.start)))
	defer e.endBudget(w)
	m.w = w
	if m.job != nil { // a job owns its message: no release
		m.E, m.Vars = e, w.vars
		if m.gen == nil { // a job of a transaction runs on its generation (held by the transaction)
			w.state(e)
			m.gen = w.gen
		}
		m.job(m)
		return
	}
	defer m.release()
	m.E, m.Vars = e, w.vars
	w.state(e)
	m.gen = w.gen
	// One parse layer: the raw positions and their checks decide 400/drop; sipgo parses later, only if a
	// function asks for the typed message.
	if err := m.scan(); err != nil {
		e.malformed(m, err)
		return
	}
	if e.kemiDrop(m, KemiReceived) { // kemi.go
		return
	}
	if m.reply {
		e.stats.replies.Add(1)
		if err := m.checkRaw(); err != nil {
			e.stats.dropParse.Add(1)
			e.log.Debug("reply dropped", "src", m.Src.String(), "err", err)
			return
		}
		if e.kemiDrop(m, KemiPreRouting) {
			return
		}
		t0 := time.Now()
		e.routeReply(m)
		e.stats.resDur.observe(time.Since(t0))
		return
	}
	if requestLine(m.Buf[:m.Raw.FirstLineEnd]) { // counted as before: a request line, even if a header is bad
		e.stats.requests.Add(1)
		e.stats.byMethod[methodIndex(m.Method())].Add(1)
	}
	if err := m.checkRaw(); err != nil {
		e.malformed(m, err)
		return
	}
	if e.kemiDrop(m, KemiPreRouting) {
		return
	}
	t0 := time.Now()
	e.routeRequest(m)
	for _, h := range e.routeDone {
		h.RequestRouteDone(m)
	}
	e.stats.reqDur.observe(time.Since(t0))
	if m.Dropped {
		e.stats.dropScript.Add(1)
	}
}

// endBudget closes the worker's budget for the message; an overrun is counted (the route that overran
// logs where it was cancelled).
func (e *Engine) endBudget(w *worker) {
	if w.budget.end() {
		e.stats.routeTimeouts.Add(1)
	}
}

// malformed answers a request that cannot be parsed with 400 (or the status of the strict check that
// refused it, with a reason phrase naming the problem) when the reply can be built (a request line and a
// usable top Via), otherwise drops it. Each outcome has its counter; the log says why at most once per
// second per source, so a flood of bad packets cannot flood the log.
func (e *Engine) malformed(m *Msg, err error) {
	code, reason := 400, "Bad Request" // the detail goes to the log; parser internals do not leak
	var rej *rejectError
	var bv badViaError
	answer := !bytes.HasPrefix(m.Buf, []byte("SIP/")) && !bytes.HasPrefix(m.Buf, []byte("ACK ")) &&
		m.Raw.HdrsEnd != 0 && m.Raw.Find(m.Buf, "via") >= 0
	switch {
	case errors.As(err, &bv) || answer && !topViaUsable(m):
		e.stats.strict.badVia.Add(1)
		answer = false
		if !errors.As(err, &bv) {
			err = fmt.Errorf("%w (and the top Via is unusable: dropped)", err)
		}
	case errors.As(err, &rej):
		e.stats.strict.rejected[rej.kind].Add(1)
		code, reason = rej.code, rej.reason
	default:
		e.stats.dropParse.Add(1)
	}
	if e.stats.strict.allowLog(m.Src.Addr(), time.Now()) {
		e.log.Info("malformed message", "src", m.Src.String(), "proto", m.Proto.String(), "err", err,
			"answer", answer, "note", "at most one line per source per second")
	}
	if !answer {
		return
	}
	w := getBuf()
	out := m.BuildReply((*w)[:0], code, reason, nil, "")
	if err := e.sendReplyBytes(m, out); err == nil {
		e.stats.replySent(OriginLocal, code)
	}
	*w = out
	putBuf(w)
}

// topViaUsable reports whether a reply to m can be addressed by its top Via (topViaOK).
func topViaUsable(m *Msg) bool {
	v, ok := m.Raw.Value(m.Buf, "via")
	if !ok {
		return false
	}
	return topViaOK(v[:rawsip.FirstValueEnd(v)])
}

func (e *Engine) routeRequest(m *Msg) {
	st := m.st() // taken once per message in process: a reload in between must not close it under the route
	err := st.RequestRoute(m)
	if err == nil {
		return
	}
	e.stats.luaErrors.Add(1)
	e.events.addRouteError("request", m, err)
	var re *RouteError
	if errors.Is(err, ErrRouteTimeout) && errors.As(err, &re) {
		e.log.Error("request route cancelled: it ran over lua.route_timeout", "where", re.Where, "err", re.Err, "method", m.Method(), "call_id", callID(m))
	} else if errors.As(err, &re) {
		e.log.Error("script error in request route", "where", re.Where, "err", re.Err, "method", m.Method(), "call_id", callID(m))
	} else {
		e.log.Error("request route failed", "err", err, "method", m.Method(), "call_id", callID(m))
	}
	if m.Replied || m.Relayed || m.IsAck() {
		return // answered or sent on before the error: a 500 now would be a second answer
	}
	if tr := e.TxReplier(); tr != nil { // a transaction made by the script answers (and absorbs retransmissions)
		if ok, err := tr.TxReply(m, 500, "Server Internal Error"); ok {
			if err != nil {
				e.log.Warn("500 after script error not sent", "err", err)
			}
			return
		}
	}
	if err := m.SendReply(500, "Server Internal Error"); err != nil {
		e.log.Warn("500 after script error not sent", "err", err)
	}
}

func callID(m *Msg) string {
	v, _ := m.Header("call-id")
	return v
}
