package tm

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// TestTimers: timers fire in deadline order on one goroutine, Stop disarms, Reset moves a deadline
// (earlier or later, armed or already fired), and firing starts no goroutine.
func TestTimers(t *testing.T) {
	var ts timers
	ts.init()
	defer ts.close()
	var mu sync.Mutex
	var got []string
	fired := make(chan struct{}, 16)
	add := func(name string, d time.Duration) *timer {
		return ts.afterFunc(d, func() {
			mu.Lock()
			got = append(got, name)
			mu.Unlock()
			fired <- struct{}{}
		})
	}
	goroutines := runtime.NumGoroutine()
	c := add("c", 90*time.Millisecond)
	add("a", 30*time.Millisecond)
	b := add("b", 60*time.Millisecond)
	stopped := add("stopped", 40*time.Millisecond)
	later := add("later", 10*time.Millisecond)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	later.Reset(120 * time.Millisecond) // moved after the others
	c.Reset(75 * time.Millisecond)      // still after b
	for range 4 {
		select {
		case <-fired:
		case <-time.After(2 * time.Second):
			t.Fatalf("timers did not fire: %v", got)
		}
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines while firing, %d before", n, goroutines)
	}
	b.Reset(time.Millisecond) // re-armed after it fired
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("re-armed timer did not fire")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"a", "b", "c", "later", "b"}
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fired %v, want %v", got, want)
		}
	}
}

// BenchmarkTimerArm measures arming and disarming a transaction timer (what every branch does at least
// twice), against time.AfterFunc.
func BenchmarkTimerArm(b *testing.B) {
	b.Run("heap", func(b *testing.B) {
		var ts timers
		ts.init()
		defer ts.close()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			t := ts.afterFunc(time.Minute, func() {})
			t.Reset(30 * time.Second)
			t.Stop()
		}
	})
	b.Run("AfterFunc", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			t := time.AfterFunc(time.Minute, func() {})
			t.Reset(30 * time.Second)
			t.Stop()
		}
	})
}

// BenchmarkTimerFire arms b.N timers due at once and waits until all fired; goroutines/fire counts the
// goroutines the runtime created per firing (1 for time.AfterFunc, 0 for the heap).
func BenchmarkTimerFire(b *testing.B) {
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}
	run := func(b *testing.B, arm func(fn func())) {
		var wg sync.WaitGroup
		wg.Add(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		g0 := created()
		for i := 0; i < b.N; i++ {
			arm(wg.Done)
		}
		wg.Wait()
		b.ReportMetric(float64(created()-g0)/float64(b.N), "goroutines/fire")
	}
	b.Run("heap", func(b *testing.B) {
		var ts timers
		ts.init()
		defer ts.close()
		run(b, func(fn func()) { ts.afterFunc(0, fn) })
	})
	b.Run("AfterFunc", func(b *testing.B) {
		run(b, func(fn func()) { time.AfterFunc(0, fn) })
	})
}
