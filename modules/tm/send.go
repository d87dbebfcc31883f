package tm

import (
	"sync/atomic"

	"github.com/siplua/siplua/engine"
)

// Sends are decided under a transaction's lock and made after it is released (DESIGN: never send while
// holding a transaction's lock). Code holding x.mu appends what to send to x.outq; x.unlock releases the
// lock and then makes the sends. One goroutine at a time makes a transaction's sends (x.sending), in the
// order they were decided, so a reply never overtakes one decided before it (a 180 relayed by one worker
// and the 200 relayed by another right after, a retransmitted 200 and a relayed reply) and a CANCEL follows
// the provisional that triggered it. A goroutine that finds another one sending only appends and returns:
// nobody waits on another's send, and the lock is held only while the state machine runs.

type outKind uint8

const (
	outRequest outKind = iota // a request on branch b: retransmission, CANCEL or ACK (errors ignored)
	outReply                  // a reply upstream for req
	outForward                // the first request of failover branch nb of b (failover)
	outRelease                // release the transaction's script generation (it may close Lua states)
)

type outCount uint8

const (
	countNone      outCount = iota
	countForwarded          // a CANCEL: counted as a relayed request whether or not the write worked
	countRelayed            // counted as a relayed reply once sent
	countLocal              // counted as a local reply once sent
)

// outMsg is one send decided under x.mu.
type outMsg struct {
	kind   outKind
	count  outCount
	logErr bool // outReply: log a failed send
	code   int
	b, nb  *branch     // outRequest: b's socket and destination; outForward: see failover
	req    *engine.Msg // outReply: the request answered (its source, socket and Via decide where); outForward: nb's source
	data   []byte
}

// sendHook is called before every send tm makes for a transaction (tests check x.mu is not held then).
type sendHook = func(x *tx)

// outArr is the array a transaction queues its sends in while it has some to make: taken from TM.outPool
// by the first, given back once they are made. A transaction waiting out wt_timer holds none (its own
// array cost 64 B a transaction).
type outArr [4]outMsg

// queue adds a send to make once x.mu is released. Called with x.mu held.
func (x *tx) queue(o outMsg) {
	if x.outq == nil {
		a, _ := x.t.outPool.Get().(*outArr)
		if a == nil {
			a = new(outArr)
		}
		x.outq = a[:0]
	}
	x.outq = append(x.outq, o)
}

// releaseOutq gives the emptied queue's array back to the pool (unless appends outgrew it). Called with
// x.mu held, by the goroutine making the sends, once none is left.
func (x *tx) releaseOutq() {
	if cap(x.outq) == len(outArr{}) {
		a := (*outArr)(x.outq[:len(outArr{})])
		*a = outArr{} // no stale references to messages and buffers
		x.t.outPool.Put(a)
	}
	x.outq = nil
}

// queueReplyTo queues a reply to m, a request a worker is routing (a retransmission, the request that
// created the transaction). When another goroutine is making x's sends, it may send after the worker has
// recycled m, so the reply goes with a copy. Called with x.mu held.
func (x *tx) queueReplyTo(m *engine.Msg, out []byte) {
	if x.sending {
		m = m.Detach()
	}
	x.queue(outMsg{kind: outReply, req: m, data: out})
}

// queueRequest queues a request (CANCEL, ACK, a retransmission) on branch b. Called with x.mu held.
func (b *branch) queueRequest(out []byte, count outCount) {
	if out == nil {
		return
	}
	b.tx.queue(outMsg{kind: outRequest, b: b, data: out, count: count})
}

// unlock releases x.mu, then makes the sends queued under it, and any queued meanwhile, in order, unless
// another goroutine is making them already.
func (x *tx) unlock() {
	if x.waiting && !x.removed {
		x.compact()
	}
	if x.sending || len(x.outq) == 0 {
		x.mu.Unlock()
		return
	}
	x.sending = true
	for {
		// Other goroutines append under x.mu past len(q) (or into a new array): q's elements stay as they
		// are while they are read without the lock.
		q := x.outq
		x.mu.Unlock()
		for i := range q {
			x.t.send(x, &q[i])
		}
		x.mu.Lock()
		rest := copy(x.outq, x.outq[len(q):])
		clear(x.outq[rest:]) // no stale references to messages and buffers
		x.outq = x.outq[:rest]
		if rest == 0 {
			x.releaseOutq()
			x.sending = false
			x.mu.Unlock()
			return
		}
	}
}

// send makes one queued send, with x.mu released.
func (t *TM) send(x *tx, o *outMsg) {
	if o.kind == outRelease {
		x.gen.Release()
		return
	}
	t.checkSend(x)
	switch o.kind {
	case outRequest:
		b := o.b
		_ = t.e.Send(b.dst.Proto, b.local, b.dst.Addr, o.data)
		if o.count == countForwarded {
			t.e.CountForwarded()
		}
	case outReply:
		if err := t.e.SendReplyBytes(o.req, o.data); err != nil {
			if o.logErr {
				t.logger().Info("reply not sent upstream", "code", o.code, "err", err, "call_id", callID(o.req))
			}
		} else if o.count == countRelayed {
			t.e.CountRelayed(o.code)
		} else if o.count == countLocal {
			t.e.CountLocal(o.code)
		}
	case outForward:
		if !t.forward(o.b, o.nb, o.req) {
			t.failoverExhausted(o.b)
		}
	}
}

// checkSend runs the test hook, if any, before a send for x.
func (t *TM) checkSend(x *tx) {
	if h := t.sendHook.Load(); h != nil {
		(*h)(x)
	}
}

// hookSlot holds the test hook; atomic because tests set it while the engine runs.
type hookSlot = atomic.Pointer[sendHook]
