package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Jobs beyond the jobs channel wait in the overflow list (no goroutine each) and all run once workers serve.
func TestRunOnWorkerOverflow(t *testing.T) {
	cfg, err := ParseConfig([]byte("[core]\nlisten = [\"udp:127.0.0.1:0\"]\nworkers = 2\nqueue = 1\n"), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var states []*fakeState
	var bad atomic.Int32
	compile := func(*Config) (Script, error) { return &fakeScript{gen: 1, bad: &bad, mu: &mu, states: &states}, nil }
	e, err := New(cfg, compile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var ran atomic.Int32
	for range n {
		e.RunOnWorker(&Msg{}, func(*Msg) { ran.Add(1) })
	}
	e.jobMu.Lock()
	waiting := len(e.jobOverflow)
	e.jobMu.Unlock()
	if waiting != n-1 {
		t.Fatalf("%d jobs in the overflow list, want %d (the channel holds one)", waiting, n-1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); ran.Load() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := ran.Load(); got != n {
		t.Fatalf("%d of %d jobs ran", got, n)
	}
}
