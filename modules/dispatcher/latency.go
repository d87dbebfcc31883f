package dispatcher

import (
	"math"
	"sync"
	"time"
)

// latency is a destination's ping latency statistics, as Kamailio's ds_update_latency keeps them: the
// running average and standard deviation (Welford), the maximum, an exponentially weighted estimate (the
// average until 10 samples, then est = alpha·est + (1−alpha)·sample) and the number of timed-out pings.
// Written by the pinger goroutine, read by dispatcher.list: a mutex, never on the routing path.
type latency struct {
	mu       sync.Mutex
	count    int
	avg, m2  float64 // ms
	est, max float64 // ms
	timeouts int
}

func (l *latency) add(d time.Duration, alpha float64) {
	ms := float64(d.Microseconds()) / 1000
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count < 1<<21 { // Kamailio: past 2^21 samples the average turns into a weighted one
		l.count++
	}
	if l.count == 1 {
		l.avg, l.m2, l.max, l.est = ms, 0, ms, ms
		return
	}
	l.max = math.Max(l.max, ms)
	delta := ms - l.avg
	l.avg += delta / float64(l.count)
	l.m2 += delta * (ms - l.avg)
	if l.count < 10 {
		l.est = l.avg
	} else {
		l.est = l.est*alpha + ms*(1-alpha)
	}
}

func (l *latency) timeout() {
	l.mu.Lock()
	l.timeouts++
	l.mu.Unlock()
}

// rpc is the LATENCY record of dispatcher.list (ms, rounded to µs).
func (l *latency) rpc() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	std := 0.0
	if l.count > 1 {
		std = math.Sqrt(l.m2 / float64(l.count-1))
	}
	r := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	return map[string]any{"AVG": r(l.avg), "STD": r(std), "EST": r(l.est), "MAX": r(l.max), "TIMEOUT": l.timeouts}
}
