package usrloc

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// realistic returns the binding of user i as a registrar would store it: every string freshly built (as
// if cut from a received REGISTER), a 32-character Call-ID, a ~20-character User-Agent, no Received, no
// Path.
func realistic(i int, now int64) (aor string, b Binding) {
	aor = fmt.Sprintf("user%06d@example.org", i)
	return aor, Binding{
		Contact:   fmt.Sprintf("sip:user%06d@10.0.%d.%d:5060;transport=udp", i, (i>>8)&255, i&255),
		Socket:    "udp:10.0.0.1:5060",
		CallID:    fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15),
		UserAgent: "Yealink SIP-T46S " + strconv.Itoa(60+i%40),
		Expires:   now + 3600, Modified: now, CSeq: uint32(i), Q: -1,
	}
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// vmRSS is the process's resident set size from /proc/self/status (0 where it cannot be read).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkMemory1M stores 1 000 000 bindings (one per AOR, the common case) and reports the live heap
// they take per binding (goal ≤ 500 B) and the resident size of the whole test process then (goal: 1 000 000
// bindings in ≤ 500 MB RSS).
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	now := time.Now().Unix()
	var perBinding float64
	var rss uint64
	for b.Loop() {
		before := liveHeap()
		s, err := openMemStore(memOptions{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			aor, nb := realistic(i, now)
			_ = s.Update(DefaultTable, aor, func(cur []Binding) ([]Binding, error) { return append(cur, nb), nil })
		}
		after := liveHeap()
		if a, c := s.Counts(); a != n || c != n {
			b.Fatalf("counts %d %d", a, c)
		}
		debug.FreeOSMemory() // what the OS still holds for the process once the garbage is returned
		rss = vmRSS()
		runtime.KeepAlive(s)
		perBinding = float64(after-before) / n
	}
	b.ReportMetric(perBinding, "B/binding")
	b.ReportMetric(float64(rss)/(1<<20), "MB-RSS")
}

// fill stores n AORs with one binding each and returns their names.
func fill(b *testing.B, n int) (*memStore, []string) {
	s, err := openMemStore(memOptions{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().Unix()
	aors := make([]string, n)
	for i := range n {
		aor, nb := realistic(i, now)
		aors[i] = aor
		_ = s.Update(DefaultTable, aor, func(cur []Binding) ([]Binding, error) { return append(cur, nb), nil })
	}
	return s, aors
}

// BenchmarkLookup: the routing path (lookup("location") for an INVITE), from every CPU at once.
func BenchmarkLookup(b *testing.B) {
	s, aors := fill(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			bs, _ := s.Lookup(DefaultTable, aors[i%len(aors)])
			if len(bs) != 1 {
				b.Fatal("lookup found nothing")
			}
			i += 7
		}
	})
}

// BenchmarkLookupMiss: an INVITE to a user who is not registered.
func BenchmarkLookupMiss(b *testing.B) {
	s, _ := fill(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if bs, _ := s.Lookup(DefaultTable, "nobody@example.org"); bs != nil {
				b.Fatal("found nobody")
			}
		}
	})
}

// BenchmarkUpdate: a re-REGISTER refreshing the one binding of an AOR (the registrar's save), from every
// CPU at once.
func BenchmarkUpdate(b *testing.B) {
	s, aors := fill(b, 100_000)
	now := time.Now().Unix()
	_, nb := realistic(1, now)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			aor := aors[i%len(aors)]
			i += 7
			_ = s.Update(DefaultTable, aor, func(cur []Binding) ([]Binding, error) {
				for j := range cur {
					if cur[j].Contact == nb.Contact {
						cur[j] = nb
						return cur, nil
					}
				}
				if len(cur) > 0 {
					cur[0].Expires, cur[0].CSeq = now+3600, cur[0].CSeq+1
					return cur, nil
				}
				return append(cur, nb), nil
			})
		}
	})
}

// BenchmarkSnapshot writes 100 000 bindings to a snapshot file.
func BenchmarkSnapshot(b *testing.B) {
	s, _ := fill(b, 100_000)
	s.snapPath = b.TempDir() + "/ul.snapshot"
	b.ReportAllocs()
	for b.Loop() {
		s.gen.Add(1) // force a write
		if err := s.saveSnapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotLoad reads a snapshot of 100 000 bindings (the start of a proxy).
func BenchmarkSnapshotLoad(b *testing.B) {
	s, _ := fill(b, 100_000)
	path := b.TempDir() + "/ul.snapshot"
	s.snapPath = path
	if err := s.saveSnapshot(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := openMemStore(memOptions{SnapshotFile: path, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if a, _ := r.Counts(); a != 100_000 {
			b.Fatalf("loaded %d", a)
		}
	}
}
