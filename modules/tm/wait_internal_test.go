package tm

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

// TestWaitStore: records are found by key and by branch id until their deadline, chunks rotate when full,
// and a sweep drops whole expired chunks with every index entry into them, nothing else.
func TestWaitStore(t *testing.T) {
	var ts timers
	ts.init()
	defer ts.close()
	var w waitStore
	w.init(&ts)
	tm := &TM{}
	mk := func(i int) *tx {
		x := &tx{t: tm, key: "z9hG4bK" + strconv.Itoa(i) + "\x00127.0.0.1:5060\x00INVITE", method: "INVITE",
			invite: true, status: 486, reply: []byte("SIP/2.0 486 Busy Here " + strconv.Itoa(i) + "\r\n\r\n"), onReply: "r"}
		b := &branch{tx: x, id: "z9hG4bKb" + strconv.Itoa(i), out: []byte("INVITE sip:b@h SIP/2.0\r\n\r\n"), status: 486,
			dst: engine.Target{Proto: engine.UDP, Addr: netip.MustParseAddrPort("[::1%lo]:5070")}}
		x.branches = []*branch{b, {tx: x, id: "z9hG4bKc" + strconv.Itoa(i), status: 408}}
		return x
	}
	now := ts.now()
	const n = 400 // ~120 B each: several 16 KB chunks
	for i := range n {
		dl := now.Add(time.Hour)
		if i < n/2 {
			dl = now.Add(time.Minute)
		}
		if !w.put(mk(i), now, dl, nil) {
			t.Fatal("put refused")
		}
	}
	if len(w.chunks) < 3 {
		t.Fatalf("%d chunks, want several", len(w.chunks))
	}
	d, ok := w.server(mk(7).key, now)
	if !ok || d.status != 486 || !d.invite || string(d.reply) != "SIP/2.0 486 Busy Here 7\r\n\r\n" || d.onReply != "r" || d.method != "INVITE" {
		t.Fatalf("record 7: %+v %v", d, ok)
	}
	_, b, ok := w.client("z9hG4bKb9", now)
	if !ok || b.idx != 0 || string(b.out) != "INVITE sip:b@h SIP/2.0\r\n\r\n" || b.dst.Addr.String() != "[::1%lo]:5070" || b.dst.Proto != engine.UDP {
		t.Fatalf("branch of record 9: %+v %v", b, ok)
	}
	if _, b, ok := w.client("z9hG4bKc9", now); !ok || b.idx != 1 || b.out != nil {
		t.Fatalf("second branch of record 9: %+v %v", b, ok)
	}
	if _, ok := w.server(mk(7).key, now.Add(2*time.Minute)); ok {
		t.Fatal("record 7 found after its deadline")
	}
	if _, ok := w.server("z9hG4bK7\x00127.0.0.1:5061\x00INVITE", now); ok {
		t.Fatal("another key found")
	}

	w.mu.Lock()
	w.sweep(now.Add(2*time.Minute), nil)
	left, chunks := w.n, len(w.chunks)
	w.mu.Unlock()
	// whole chunks go: the one holding both the last short and the first long records stays
	if left < n/2 || left == n || chunks == 0 {
		t.Fatalf("after the first sweep: %d records in %d chunks", left, chunks)
	}
	if _, ok := w.server(mk(n-1).key, now); !ok {
		t.Fatal("a record whose wait is not over was swept")
	}
	w.mu.Lock()
	w.sweep(now.Add(2*time.Hour), nil)
	w.mu.Unlock()
	if w.n != 0 || len(w.chunks) != 0 || len(w.idx) != 0 {
		t.Fatalf("after the last sweep: %d records, %d chunks, %d index entries", w.n, len(w.chunks), len(w.idx))
	}
	if _, ok := w.server(mk(n-1).key, now); ok {
		t.Fatal("a swept record found")
	}
}

// FuzzWaitRecord: whatever a transaction holds, its record reads back the same (recordSize and the writing
// agree, or put panics), and a transaction too big for a record is refused, not cut.
func FuzzWaitRecord(f *testing.F) {
	f.Add("z9hG4bK1\x00127.0.0.1:5060\x00INVITE", "INVITE", "onrep", []byte("SIP/2.0 486 Busy\r\n\r\n"), "z9hG4bKa", []byte("INVITE sip:b@h SIP/2.0\r\n\r\n"), uint16(486), "[fe80::1%eth0]:5070")
	f.Add("k", "BYE", "", []byte(nil), "", []byte(nil), uint16(200), "10.0.0.1:5060")
	f.Fuzz(func(t *testing.T, key, method, onReply string, reply []byte, id string, out []byte, status uint16, dst string) {
		var ts timers
		var w waitStore
		w.init(&ts)
		x := &tx{t: &TM{}, key: key, method: method, onReply: onReply, reply: reply, invite: true, status: int32(status)}
		ap, _ := netip.ParseAddrPort(dst)
		b := &branch{tx: x, id: id, out: out, status: int32(status), dst: engine.Target{Proto: engine.TCP, Addr: ap}}
		x.branches = []*branch{b}
		now := mono(1)
		if !w.put(x, now, now.Add(time.Second), nil) {
			if recordSize(x) >= 0 {
				t.Fatal("put refused a transaction recordSize accepts")
			}
			return
		}
		d, ok := w.server(key, now)
		if !ok || d.key != key || d.method != method || d.onReply != onReply || string(d.reply) != string(reply) ||
			d.status != int(status) || !d.invite || d.nbr != 1 {
			t.Fatalf("read back %+v %v", d, ok)
		}
		if id == "" {
			return
		}
		_, db, ok := w.client(id, now)
		if !ok || db.id != id {
			t.Fatalf("branch %q not found: %+v", id, db)
		}
		if b.keepsRequest() {
			if string(db.out) != string(out) || db.dst.Addr != ap || db.dst.Proto != engine.TCP {
				t.Fatalf("branch read back %+v, want out %q dst %v", db, out, ap)
			}
		} else if db.out != nil {
			t.Fatalf("branch kept its request: %+v", db)
		}
	})
}
