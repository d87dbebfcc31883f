package tm_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// BenchmarkTransaction relays INVITE → 200 statefully over loopback UDP (UAC and UAS are raw sockets of
// the benchmark). allocs/op and B/op are process-wide; live-B/tx is the heap the completed transactions
// still hold while they wait out wt_timer (what a transaction costs in memory). With TM_BENCH_HEAPPROFILE=file
// it also writes the heap profile at that point (-memprofile writes its own after the engine has stopped
// and dropped its transactions): go tool pprof -sample_index=inuse_space tm.test file.
func BenchmarkTransaction(b *testing.B) {
	p := enginetest.Start(b, "[core]\nworkers = 1\n[modules.tm]\nwt_timer = 60000\n[modules.rr]\n[modules.sl]\n", `
function ksr_request_route()
	KSR.rr.record_route()
	KSR.tm.t_relay()
end`)
	uac := p.UDPClient(b)
	uas := enginetest.NewUDPClient(b, p.UDP)
	base := rawInvite(uac.Addr.String(), "sip:bob@"+uas.Addr.String(), "z9hG4bKbench")
	sdp := "v=0\r\no=caller 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\n"
	base = enginetest.CRLF(strings.Replace(base, "Content-Length: 0", "Content-Type: application/sdp\nContent-Length: "+strconv.Itoa(len(sdp)), 1)) + sdp
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := strconv.Itoa(i)
		inv := strings.Replace(strings.Replace(base, "z9hG4bKbench", "z9hG4bKbench"+id, 1), "golden-1@test", "bench-"+id, 1)
		uac.Send(inv)
		uac.RecvRaw(2 * time.Second) // 100
		req := uas.RecvRaw(2 * time.Second)
		uas.Send(replyTo(string(req), "200 OK", "b"+id))
		uac.RecvRaw(2 * time.Second) // 200
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if f := os.Getenv("TM_BENCH_HEAPPROFILE"); f != "" { // after the reading: writing it allocates
		writeHeapProfile(b, f)
	}
	if b.N >= 100 {
		b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(before))/float64(b.N), "live-B/tx")
	}
}

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
