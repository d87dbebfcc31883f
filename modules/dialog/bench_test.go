package dialog_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

const benchInvite = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-%[1]d;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"Alice\" <sip:alice@example.com>;tag=a%[1]d\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"Call-ID: %[1]d-6f1c2b9e8d@client.example.com\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: <sip:alice@127.0.0.1:5080>\r\n" +
	"Content-Length: 0\r\n\r\n"

const bench200 = "SIP/2.0 200 OK\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-%[1]d;rport\r\n" +
	"Record-Route: <sip:127.0.0.1:5060;lr>\r\n" +
	"From: \"Alice\" <sip:alice@example.com>;tag=a%[1]d\r\n" +
	"To: <sip:bob@example.com>;tag=b%[1]d\r\n" +
	"Call-ID: %[1]d-6f1c2b9e8d@client.example.com\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: <sip:bob@127.0.0.1:5070>\r\n" +
	"Content-Length: 0\r\n\r\n"

// confirm creates dialog i (dlg_manage on its INVITE, then its 200 through the reply hook).
func confirm(tb testing.TB, p *enginetest.Proxy, manage func(*engine.Msg) int, i int) {
	if manage(enginetest.Msg(tb, p, fmt.Sprintf(benchInvite, i))) != 1 {
		tb.Fatal("dlg_manage failed")
	}
	dlgOf(tb, p).OnReply(enginetest.Msg(tb, p, fmt.Sprintf(bench200, i)))
}

// TestDialogMemory measures the heap a confirmed dialog keeps (10k dialogs).
func TestDialogMemory(t *testing.T) {
	p := enginetest.Start(t, baseConfig+"[modules.dialog]\n", "function ksr_request_route() end")
	manage := p.Export(t, "dialog", "dlg_manage").(func(*engine.Msg) int)
	const n = 10000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		confirm(t, p, manage, i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := len(dlgOf(t, p).List("")); got != n {
		t.Fatalf("%d dialogs, want %d", got, n)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("heap per confirmed dialog: %.0f bytes (%d dialogs)", per, n)
	if per > 8192 {
		t.Errorf("a dialog keeps %.0f bytes, more than 8 KiB", per)
	}
}

// BenchmarkDialogCreateConfirm: dlg_manage on an INVITE plus its 200 through the reply hook.
func BenchmarkDialogCreateConfirm(b *testing.B) {
	p := enginetest.Start(b, baseConfig+"[modules.dialog]\n", "function ksr_request_route() end")
	manage := p.Export(b, "dialog", "dlg_manage").(func(*engine.Msg) int)
	d := dlgOf(b, p)
	inv, ok := make([]*engine.Msg, b.N), make([]*engine.Msg, b.N)
	for i := range inv { // parsed before the clock runs: the benchmark is the module's work
		inv[i] = enginetest.Msg(b, p, fmt.Sprintf(benchInvite, i))
		ok[i] = enginetest.Msg(b, p, fmt.Sprintf(bench200, i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		manage(inv[i])
		d.OnReply(ok[i])
	}
}
