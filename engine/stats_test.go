package engine

import (
	"testing"
	"time"
)

// BenchmarkStatsPerMessage is what metrics add to routing one request and replying: the method counter,
// the route duration (two clock reads and a histogram bucket) and the reply class counter. It must not
// allocate.
func BenchmarkStatsPerMessage(b *testing.B) {
	var s Stats
	methods := []string{"INVITE", "OPTIONS", "REGISTER", "FOO"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.byMethod[methodIndex(methods[i&3])].Add(1)
		t0 := time.Now()
		s.reqDur.observe(time.Since(t0))
		s.replySent(OriginLocal, 200)
		i++
	}
	if s.requestsSeen() != uint64(i) {
		b.Fatalf("counted %d of %d", s.requestsSeen(), i)
	}
}

func (s *Stats) requestsSeen() (n uint64) {
	s.RequestsByMethod(func(_ string, c uint64) { n += c })
	return n
}

func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 51 * time.Microsecond, time.Millisecond, 10 * time.Second} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count != 5 || s.Counts[0] != 2 || s.Counts[1] != 1 || s.Counts[4] != 1 || s.Counts[len(s.Counts)-1] != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	if s.Sum < 10 || s.Sum > 10.01 {
		t.Fatalf("sum %v", s.Sum)
	}
}
