package tm

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// A completed transaction waits out wt_timer (5 s) to absorb retransmissions: the request retransmitted
// by the caller gets the final reply again, an ACK or CANCEL for it is answered, a final reply retransmitted
// by a callee is ACKed again (negative) or relayed (2xx). That is all it still does, yet as a live tx with its
// request, branches and strings it is some 30 heap objects the garbage collector marks on every cycle: at
// 7 000 calls/s, 170 MB of them, a mark phase of 130–300 ms taking a quarter of the core, and the requests
// queued meanwhile are the proxy's whole 99th percentile. So once completed (tx.compact), a transaction
// becomes a record here: a few hundred bytes appended to a chunk of bytes with no pointers, found through
// a map of integers. The collector never looks inside either.
//
// Records are immutable once written and a chunk is never reused, so what a lookup returns (views into a
// chunk) stays valid after the lock is released, even when the chunk has meanwhile been swept. Every record
// waits the same wt_timer, so records expire in the order they were written: whole chunks are dropped from
// the head (waitStore.sweep), never single records.

// waitStore holds the completed transactions, by server key and by branch id.
type waitStore struct {
	mu     sync.Mutex
	seed   maphash.Seed
	idx    map[uint64]uint64 // hash of a server key or branch id → where its record is (waitPos)
	chunks []*waitChunk      // oldest first; chunks[i].seq == head+i
	head   uint32
	n      int // records in the chunks
	ts     *timers
	tmr    timer // the sweep, armed while there are chunks
	armed  bool  // tmr is scheduled (under mu; the timer's own state is the timers')
}

// waitChunk is one buffer of records. gens are the script generations its records' late replies run on,
// held until the chunk goes: a handful of pointers per chunk rather than one per record.
type waitChunk struct {
	seq   uint32
	data  []byte
	gens  []*engine.Generation
	start mono // when its first record went in
	last  mono // the latest deadline of its records
}

const (
	waitChunkMin = 16 << 10
	waitChunkMax = 4 << 20
	// waitChunkSpan bounds the time over which one chunk takes records, so that a chunk (and the
	// generations it holds) goes at most this long after wt_timer.
	waitChunkSpan = time.Second
	// waitRecordMax: a bigger transaction (a huge reply kept for retransmission) is not compacted; it waits
	// out wt_timer as it is.
	waitRecordMax = 1 << 20
	// clientSalt tells a branch id's hash from a server key's (a server key always holds a NUL, a branch
	// id never, so the strings themselves never meet).
	clientSalt = 0x9e3779b97f4a7c15
	noGen      = 0xffff
)

// waitPos packs a record's chunk sequence number and offset.
func waitPos(seq uint32, off int) uint64 { return uint64(seq)<<32 | uint64(uint32(off)) }

func (w *waitStore) init(ts *timers) {
	w.seed = maphash.MakeSeed()
	w.idx = map[uint64]uint64{}
	w.ts = ts
}

func (w *waitStore) serverHash(k string) uint64 { return maphash.String(w.seed, k) }
func (w *waitStore) clientHash(id string) uint64 {
	return maphash.String(w.seed, id) ^ clientSalt
}

// Record layout (little endian):
//
//	u32 length of the record, i64 deadline, u16 status, u8 flags (1: INVITE), u8 branch count,
//	u64 the request's message flags, u16 generation (index in the chunk's gens, noGen when none),
//	u16+key, u16+method, u16+onreply route, u32+last reply sent upstream,
//	then per branch: u16+id, u8 has-request; when set, u8 proto, u8+address (netip binary), u16 port,
//	i16 listener index, u32+the request as sent (the hop-by-hop ACK of a late negative reply is built from it).
const waitFixed = 4 + 8 + 2 + 1 + 1 + 8 + 2

// keepsRequest: the branch's request as sent is kept with the record, for the ACK of a negative final
// reply the callee sends again (ours was lost). A 2xx's ACK is end-to-end; a non-INVITE has none.
func (b *branch) keepsRequest() bool {
	return b.tx.invite && b.out != nil && b.status >= 300
}

// recordSize is the size of x's record, or -1 when x cannot be one.
func recordSize(x *tx) int {
	if len(x.branches) > 255 || len(x.key) > 0xffff || len(x.method) > 0xffff || len(x.onReply) > 0xffff {
		return -1
	}
	n := waitFixed + 2 + len(x.key) + 2 + len(x.method) + 2 + len(x.onReply) + 4 + len(x.reply)
	for _, b := range x.branches {
		if len(b.id) > 0xffff {
			return -1
		}
		n += 2 + len(b.id) + 1
		if b.keepsRequest() {
			n += 1 + 1 + 16 + 2 + 2 + 4 + len(b.out) + len(b.dst.Addr.Addr().Zone())
		}
	}
	if n > waitRecordMax {
		return -1
	}
	return n
}

// put appends x's record, waiting until deadline, and indexes it by its key and branch ids. false: x
// cannot be a record (recordSize). Called with x.mu held.
func (w *waitStore) put(x *tx, now, deadline mono, listeners []*engine.Listener) bool {
	size := recordSize(x)
	if size < 0 {
		return false
	}
	le := binary.LittleEndian
	w.mu.Lock()
	c := w.chunkFor(size, now)
	gi := w.genIndex(c, x.gen)
	off := len(c.data)
	d := c.data
	d = le.AppendUint32(d, uint32(size))
	d = le.AppendUint64(d, uint64(deadline))
	d = le.AppendUint16(d, uint16(x.status))
	var fl byte
	if x.invite {
		fl = 1
	}
	d = append(d, fl, byte(len(x.branches)))
	var flags uint64
	if x.req != nil {
		flags = x.req.Flags
	}
	d = le.AppendUint64(d, flags)
	d = le.AppendUint16(d, gi)
	d = appendStr16(d, x.key)
	d = appendStr16(d, x.method)
	d = appendStr16(d, x.onReply)
	d = le.AppendUint32(d, uint32(len(x.reply)))
	d = append(d, x.reply...)
	for _, b := range x.branches {
		d = appendStr16(d, b.id)
		if !b.keepsRequest() {
			d = append(d, 0)
			continue
		}
		d = append(d, 1, byte(b.dst.Proto), 0)
		at := len(d)
		d, _ = b.dst.Addr.Addr().AppendBinary(d) // 4 or 16 bytes, then the zone
		d[at-1] = byte(len(d) - at)
		d = le.AppendUint16(d, b.dst.Addr.Port())
		li := int16(-1)
		for i, l := range listeners {
			if l == b.local {
				li = int16(i)
				break
			}
		}
		d = le.AppendUint16(d, uint16(li))
		d = le.AppendUint32(d, uint32(len(b.out)))
		d = append(d, b.out...)
	}
	if len(d)-off > size || cap(d) != cap(c.data) {
		// recordSize and the writing disagree (a bug): nothing was stored, the transaction stays live
		w.mu.Unlock()
		return false
	}
	// recordSize counts 16 address bytes, an IPv4 address takes 4: the length is what was written
	le.PutUint32(d[off:], uint32(len(d)-off))
	c.data = d
	c.last = max(c.last, deadline)
	pos := waitPos(c.seq, off)
	w.idx[w.serverHash(x.key)] = pos
	for _, b := range x.branches {
		if b.id != "" {
			w.idx[w.clientHash(b.id)] = pos
		}
	}
	w.n++
	if !w.armed {
		w.armed = true
		w.ts.start(&w.tmr, w, max(c.last.Sub(now), 0)+time.Millisecond)
	}
	w.mu.Unlock()
	return true
}

func appendStr16(d []byte, s string) []byte {
	d = binary.LittleEndian.AppendUint16(d, uint16(len(s)))
	return append(d, s...)
}

// chunkFor returns the chunk the next record of size bytes goes into, starting a new one when the current
// one is full or old. Called with w.mu held.
func (w *waitStore) chunkFor(size int, now mono) *waitChunk {
	var cur *waitChunk
	if len(w.chunks) > 0 {
		cur = w.chunks[len(w.chunks)-1]
		if len(cur.data)+size <= cap(cur.data) && now.Sub(cur.start) < waitChunkSpan {
			return cur
		}
	}
	n := waitChunkMin
	if cur != nil {
		if len(cur.data)+size > cap(cur.data) {
			n = 2 * cap(cur.data) // filled within its span: twice as big
		} else {
			n = len(cur.data) + len(cur.data)/4 // the span ended first: about what it took
		}
	}
	n = max(min(n, waitChunkMax), waitChunkMin, size)
	c := &waitChunk{seq: w.head + uint32(len(w.chunks)), data: make([]byte, 0, n), start: now}
	w.chunks = append(w.chunks, c)
	return c
}

// genIndex is g's index in c.gens, adding it (held) when new. Called with w.mu held.
func (w *waitStore) genIndex(c *waitChunk, g *engine.Generation) uint16 {
	if g == nil {
		return noGen
	}
	for i, h := range c.gens {
		if h == g {
			return uint16(i)
		}
	}
	if len(c.gens) >= noGen || !g.Hold() {
		return noGen
	}
	c.gens = append(c.gens, g)
	return uint16(len(c.gens) - 1)
}

// record returns the record at pos and its chunk's generations, if the chunk is still there. Called with
// w.mu held.
func (w *waitStore) record(pos uint64) ([]byte, []*engine.Generation) {
	i := uint32(pos>>32) - w.head
	if int(i) >= len(w.chunks) {
		return nil, nil
	}
	c := w.chunks[i]
	off := int(uint32(pos))
	if off+4 > len(c.data) {
		return nil, nil
	}
	n := int(binary.LittleEndian.Uint32(c.data[off:]))
	return c.data[off : off+n : off+n], c.gens
}

// server finds the completed transaction with server key k, unless its wait is over.
func (w *waitStore) server(k string, now mono) (doneTx, bool) {
	d, ok := w.get(w.serverHash(k), now)
	if !ok || d.key != k {
		return doneTx{}, false
	}
	return d, true
}

// get reads the record under hash h, unless there is none or its wait is over.
func (w *waitStore) get(h uint64, now mono) (doneTx, bool) {
	w.mu.Lock()
	pos, ok := w.idx[h]
	var rec []byte
	var gens []*engine.Generation
	if ok {
		rec, gens = w.record(pos)
	}
	w.mu.Unlock()
	if rec == nil {
		return doneTx{}, false
	}
	d := decodeDone(rec, gens)
	return d, now.Before(d.deadline)
}

// client finds the completed transaction one of whose branches has Via branch id, and that branch's index.
func (w *waitStore) client(id string, now mono) (doneTx, doneBranch, bool) {
	d, ok := w.get(w.clientHash(id), now)
	if !ok {
		return doneTx{}, doneBranch{}, false
	}
	for i, p := 0, d.br; i < d.nbr; i++ {
		var b doneBranch
		b, p = decodeBranch(p)
		if b.id == id {
			b.idx = i
			return d, b, true
		}
	}
	return doneTx{}, doneBranch{}, false
}

// byCallID reports whether a record waiting still answered the request with Call-ID callid and CSeq
// number cseq (tmx's t_cancel_callid): a scan of every record's reply, for occasional use.
func (w *waitStore) byCallID(callid, cseq string, now mono) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	var raw rawsip.Msg
	for _, c := range w.chunks {
		for off := 0; off < len(c.data); {
			n := int(binary.LittleEndian.Uint32(c.data[off:]))
			d := decodeDone(c.data[off:off+n], nil)
			off += n
			if !now.Before(d.deadline) || rawsip.Scan(d.reply, &raw) != nil {
				continue
			}
			id, _ := raw.Value(d.reply, "call-id")
			cs, _ := raw.Value(d.reply, "cseq")
			num, _, _ := strings.Cut(strings.TrimSpace(string(cs)), " ")
			if string(id) == callid && num == cseq {
				return true
			}
		}
	}
	return false
}

// len is the number of records kept (those whose wait ended count until their chunk goes).
func (w *waitStore) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// sweep drops the chunks whose every record's wait is over, and their index entries; it returns the
// generations they held, to release once w.mu is released (a release may close Lua states). Called with
// w.mu held.
func (w *waitStore) sweep(now mono, rel []*engine.Generation) []*engine.Generation {
	for len(w.chunks) > 0 && w.chunks[0].last.Before(now) {
		c := w.chunks[0]
		for off := 0; off < len(c.data); {
			n := int(binary.LittleEndian.Uint32(c.data[off:]))
			d := decodeDone(c.data[off:off+n], nil)
			pos := waitPos(c.seq, off)
			w.unindex(w.serverHash(d.key), pos)
			for i, p := 0, d.br; i < d.nbr; i++ {
				var b doneBranch
				b, p = decodeBranch(p)
				if b.id != "" {
					w.unindex(w.clientHash(b.id), pos)
				}
			}
			w.n--
			off += n
		}
		rel = append(rel, c.gens...)
		w.chunks[0] = nil
		w.chunks = w.chunks[1:]
		w.head++
	}
	if len(w.chunks) == 0 {
		w.chunks = nil // let the backing array go
	}
	return rel
}

// unindex removes h's entry if it still points at pos (a later record of the same key replaced it
// otherwise). Called with w.mu held.
func (w *waitStore) unindex(h, pos uint64) {
	if p, ok := w.idx[h]; ok && p == pos {
		delete(w.idx, h)
	}
}

// fire is the sweep timer (timers.go): drop what expired, then wait for the next chunk's end.
func (w *waitStore) fire() {
	now := w.ts.now()
	w.mu.Lock()
	rel := w.sweep(now, nil)
	if len(w.chunks) > 0 {
		w.tmr.Reset(max(w.chunks[0].last.Sub(now), 0) + time.Millisecond)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for _, g := range rel {
		g.Release()
	}
}

func (w *waitStore) timerSet() *timers { return w.ts }

// doneTx is a completed transaction read from its record: views into the record, valid for good.
type doneTx struct {
	deadline mono
	status   int
	invite   bool
	flags    uint64 // the request's message flags (t_lookup_cancel copies them)
	gen      *engine.Generation
	key      string
	method   string
	onReply  string
	reply    []byte
	nbr      int
	br       []byte // the branch entries
}

// doneBranch is one branch of a doneTx.
type doneBranch struct {
	idx      int
	id       string
	out      []byte // the request as sent, when kept (keepsRequest)
	dst      engine.Target
	listener int
}

func decodeDone(rec []byte, gens []*engine.Generation) doneTx {
	le := binary.LittleEndian
	d := doneTx{
		deadline: mono(le.Uint64(rec[4:])),
		status:   int(le.Uint16(rec[12:])),
		invite:   rec[14]&1 != 0,
		nbr:      int(rec[15]),
		flags:    le.Uint64(rec[16:]),
	}
	if gi := le.Uint16(rec[24:]); int(gi) < len(gens) {
		d.gen = gens[gi]
	}
	p := rec[waitFixed:]
	d.key, p = str16(p)
	d.method, p = str16(p)
	d.onReply, p = str16(p)
	n := int(le.Uint32(p))
	d.reply, d.br = p[4:4+n:4+n], p[4+n:]
	if len(d.reply) == 0 {
		d.reply = nil
	}
	return d
}

func str16(p []byte) (string, []byte) {
	n := int(binary.LittleEndian.Uint16(p))
	return rawsip.View(p[2 : 2+n]), p[2+n:]
}

func decodeBranch(p []byte) (doneBranch, []byte) {
	var b doneBranch
	b.id, p = str16(p)
	b.listener = -1
	if p[0] == 0 {
		return b, p[1:]
	}
	le := binary.LittleEndian
	b.dst.Proto = engine.Proto(p[1])
	an := int(p[2])
	var a netip.Addr
	_ = a.UnmarshalBinary(p[3 : 3+an])
	p = p[3+an:]
	b.dst.Addr = netip.AddrPortFrom(a, le.Uint16(p))
	b.listener = int(int16(le.Uint16(p[2:])))
	n := int(le.Uint32(p[4:]))
	b.out = p[8 : 8+n : 8+n]
	return b, p[8+n:]
}
