package pike

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

func results(t *table, a netip.Addr, now time.Time, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = t.hit(a, now)
	}
	return out
}

func summary(rs []int) string {
	s := ""
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j] == rs[i] {
			j++
		}
		s += fmt.Sprintf("%s×%d ", [...]string{"ok", "red", "new"}[rs[i]], j-i)
		i = j
	}
	return s
}

// TestCounting pins the counting semantics on a controlled clock: within one sampling unit an address
// passes density-1 times, the density-th request is the first marked (-2), then -1 while it is hot.
// Kamailio's tree lets a few more through first (21 for density 16, measured on Kamailio 5.6.3) because an
// address only gets its own counter after its prefix nodes fill up; siplua counts per address at once.
func TestCounting(t *testing.T) {
	tb := newTable(1024, 2*time.Second, 120, 16)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	t0 := tb.start
	for _, step := range []struct {
		at   time.Duration
		addr netip.Addr
		n    int
		want string
	}{
		{0, a, 300, "ok×15 new×1 red×284 "},
		{100 * time.Millisecond, b, 20, "ok×15 new×1 red×4 "}, // another address is counted apart
		// next unit: prev = 300 keeps it hot, whatever it sends now
		{2100 * time.Millisecond, a, 16, "red×16 "},
		// still sending the density in every unit: still blocked
		{4100 * time.Millisecond, a, 16, "red×16 "},
		// one more unit where prev = 16 keeps it red, then a calm unit: the swap finds prev = 0 → unblocked
		{8100 * time.Millisecond, a, 1, "ok×1 "},
		// one request a unit is no flood; a new burst is counted from the unit's start again
		{10100 * time.Millisecond, a, 40, "ok×15 new×1 red×24 "},
	} {
		if got := summary(results(tb, step.addr, t0.Add(step.at), step.n)); got != step.want {
			t.Fatalf("at %v, %d hits from %v: %s, want %s", step.at, step.n, step.addr, got, step.want)
		}
	}
}

// TestRemoveLatency: an address unseen for remove_latency seconds is forgotten (its slot reusable, its
// counters reset), as Kamailio's clean timer removes the node.
func TestRemoveLatency(t *testing.T) {
	tb := newTable(1024, 10*time.Second, 3, 4)
	a := netip.MustParseAddr("2001:db8::1")
	t0 := tb.start
	if got := summary(results(tb, a, t0, 5)); got != "ok×3 new×1 red×1 " {
		t.Fatalf("flood: %s", got)
	}
	n := 0
	tb.each(t0.Add(2*time.Second), func(netip.Addr, uint16, uint16, int, status) { n++ })
	if n != 1 {
		t.Fatalf("listed %d addresses before remove_latency, want 1", n)
	}
	// same sampling unit (10 s), but 4 s of silence > remove_latency 3: forgotten, counted afresh
	n = 0
	tb.each(t0.Add(4500*time.Millisecond), func(netip.Addr, uint16, uint16, int, status) { n++ })
	if n != 0 {
		t.Fatalf("listed %d addresses after remove_latency, want 0", n)
	}
	if got := summary(results(tb, a, t0.Add(4500*time.Millisecond), 1)); got != "ok×1 " {
		t.Fatalf("after remove_latency: %s", got)
	}
}

// TestBoundedUnderSpoofing: a million spoofed sources do not grow the table and do not evict a flooding
// address: eviction takes the slot with the fewest hits that is not blocked.
func TestBoundedUnderSpoofing(t *testing.T) {
	tb := newTable(4096, 60*time.Second, 120, 10)
	now := tb.start
	flood := netip.MustParseAddr("198.51.100.7")
	results(tb, flood, now, 10)
	for i := 0; i < 1_000_000; i++ {
		tb.hit(spoofed(i), now)
	}
	if r := tb.hit(flood, now); r != red {
		t.Fatalf("flooding address after 1M spoofed sources: %d, want still blocked (%d)", r, red)
	}
	n := 0
	tb.each(now, func(netip.Addr, uint16, uint16, int, status) { n++ })
	if n != len(tb.buckets)*bucketSize {
		t.Fatalf("table lists %d addresses, want its capacity %d", n, len(tb.buckets)*bucketSize)
	}
}

func spoofed(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// BenchmarkMemory inserts N distinct sources into the default-size table and reports the heap growth: it
// must stay flat (the table is allocated once), whatever N.
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var before, after runtime.MemStats
			for range b.N {
				runtime.GC()
				runtime.ReadMemStats(&before)
				tb := newTable(65536, 2*time.Second, 120, 30)
				now := tb.start
				for i := 0; i < n; i++ {
					tb.hit(spoofed(i), now)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "heap-bytes")
				runtime.KeepAlive(tb)
			}
		})
	}
}

// BenchmarkHit is one check on a warm table, spread over many addresses, from parallel workers.
func BenchmarkHit(b *testing.B) {
	tb := newTable(65536, 2*time.Second, 120, 30)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tb.hit(spoofed(i&0xffff), now)
			i++
		}
	})
}

// TestConcurrent: workers hit shared addresses while pike.top walks the table; no hit is lost.
func TestConcurrent(t *testing.T) {
	tb := newTable(1024, time.Minute, 120, 60000)
	now := tb.start
	const workers, hits, addrs = 8, 5000, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < hits; i++ {
				tb.hit(spoofed((i+w)%addrs), now)
			}
		}(w)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			tb.each(now, func(netip.Addr, uint16, uint16, int, status) {})
		}
	}()
	wg.Wait()
	<-done
	total, n := 0, 0
	tb.each(now, func(_ netip.Addr, _, curr uint16, _ int, _ status) { total += int(curr); n++ })
	if total != workers*hits || n != addrs {
		t.Fatalf("counted %d hits on %d addresses, want %d on %d", total, n, workers*hits, addrs)
	}
}
