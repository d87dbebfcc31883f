package tm

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestSendOrder: sends decided under a transaction's lock by several goroutines at once go out in the
// order they were decided (the order the lock was taken in), each exactly once, and none with the lock
// held.
func TestSendOrder(t *testing.T) {
	p := enginetest.Start(t, "[modules.tm]\n", "function ksr_request_route() end")
	inst, ok := p.E.Module("tm")
	if !ok {
		t.Fatal("tm is not loaded")
	}
	tm := inst.(*TM)
	uac := p.UDPClient(t)
	raw := "OPTIONS sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP " + uac.Addr.String() + ";rport;branch=z9hG4bKorder\n" +
		"From: <sip:alice@127.0.0.1>;tag=a\nTo: <sip:bob@127.0.0.1>\nCall-ID: order@test\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	req, err := p.E.NewMsg([]byte(enginetest.CRLF(raw)), uac.Addr, engine.UDP)
	if err != nil {
		t.Fatal(err)
	}
	x := &tx{t: tm, req: req}
	var sends, held atomic.Int64
	WatchSends(tm, func(h bool) {
		sends.Add(1)
		if h {
			held.Add(1)
		}
	})
	const workers, each = 4, 50
	seq := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				x.mu.Lock()
				seq++
				out := fmt.Sprintf("SIP/2.0 200 OK\r\nX-Seq: %d\r\nContent-Length: 0\r\n\r\n", seq)
				x.queue(outMsg{kind: outReply, req: req, data: []byte(out)})
				x.unlock()
			}
		}()
	}
	wg.Wait()
	for i := 1; i <= workers*each; i++ {
		b, err := uac.TryRecv(2 * time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if want := fmt.Sprintf("X-Seq: %d\r\n", i); !strings.Contains(string(b), want) {
			t.Fatalf("reply %d out of order:\n%s", i, b)
		}
	}
	if _, err := uac.TryRecv(100 * time.Millisecond); err == nil {
		t.Error("more replies than were queued")
	}
	if n := held.Load(); n > 0 {
		t.Errorf("%d of %d sends made holding the transaction's lock", n, sends.Load())
	}
	x.mu.Lock()
	if len(x.outq) != 0 || x.sending {
		t.Errorf("after the sends: %d queued, sending=%v", len(x.outq), x.sending)
	}
	x.mu.Unlock()
}

// BenchmarkQueuedReply: deciding a reply under the lock and sending it after (what every reply of a
// transaction costs over the bare socket write), against sending it with the lock held as tm did before.
func BenchmarkQueuedReply(b *testing.B) {
	p := enginetest.Start(b, "[modules.tm]\n", "function ksr_request_route() end")
	inst, _ := p.E.Module("tm")
	tm := inst.(*TM)
	uac := p.UDPClient(b) // never reads: the kernel drops what does not fit
	raw := "OPTIONS sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP " + uac.Addr.String() + ";rport;branch=z9hG4bKbench\n" +
		"From: <sip:alice@127.0.0.1>;tag=a\nTo: <sip:bob@127.0.0.1>\nCall-ID: bench@test\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	req, err := p.E.NewMsg([]byte(enginetest.CRLF(raw)), uac.Addr, engine.UDP)
	if err != nil {
		b.Fatal(err)
	}
	out := []byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
	b.Run("queued", func(b *testing.B) {
		x := &tx{t: tm, req: req}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			x.mu.Lock()
			x.queue(outMsg{kind: outReply, req: req, data: out})
			x.unlock()
		}
	})
	b.Run("under-lock", func(b *testing.B) {
		x := &tx{t: tm, req: req}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			x.mu.Lock()
			_ = tm.e.SendReplyBytes(req, out)
			x.mu.Unlock()
		}
	})
}
