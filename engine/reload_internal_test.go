package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeScript counts the states it builds so the test can see each closed exactly once.
type fakeScript struct {
	gen    uint64
	bad    *atomic.Int32
	mu     *sync.Mutex
	states *[]*fakeState
}

type fakeState struct {
	gen    uint64
	closed atomic.Int32
	useBad *atomic.Int32 // counts routing on a closed state
	routed atomic.Int32
}

func (s *fakeScript) NewState(int) (State, error) {
	st := &fakeState{gen: s.gen, useBad: s.bad}
	s.mu.Lock()
	*s.states = append(*s.states, st)
	s.mu.Unlock()
	return st, nil
}

func (st *fakeState) RequestRoute(m *Msg) error {
	if st.closed.Load() != 0 {
		st.useBad.Add(1)
	}
	st.routed.Add(1)
	return m.SendReply(200, fmt.Sprintf("gen %d", st.gen))
}
func (st *fakeState) ReplyRoute(*Msg) error   { return nil }
func (st *fakeState) Call(string, *Msg) error { return nil }
func (st *fakeState) Close()                  { st.closed.Add(1) }

// Under traffic and back-to-back reloads (some generations replaced before a worker took its state),
// every state of a replaced generation is closed exactly once, none is used after closing, and the
// current generation's states stay open.
func TestReloadClosesEveryStateOnce(t *testing.T) {
	cfg, err := ParseConfig([]byte("[core]\nlisten = [\"udp:127.0.0.1:0\"]\nworkers = 4\n"), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var states []*fakeState
	var bad atomic.Int32
	var seq atomic.Uint64
	compile := func(*Config) (Script, error) {
		return &fakeScript{gen: seq.Add(1), bad: &bad, mu: &mu, states: &states}, nil
	}
	e, err := New(cfg, compile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()

	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(e.Listeners()[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stopTraffic := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() { // bounded: stops with the reloads
		defer traffic.Done()
		local := conn.LocalAddr().String()
		for i := 0; ; i++ {
			select {
			case <-stopTraffic:
				return
			default:
			}
			req := fmt.Sprintf("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK%d\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: %d@t\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", local, i, i)
			_, _ = conn.Write([]byte(req))
			if i%8 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	go func() { // drain replies so the socket buffer never fills
		buf := make([]byte, 2048)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	// Reloads must overlap traffic: wait for it to flow, and every 20 reloads for it to move on.
	waitTraffic := func() {
		n := e.Stats().requests.Load()
		for deadline := time.Now().Add(2 * time.Second); e.Stats().requests.Load() == n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	waitTraffic()
	const reloads = 200
	for i := range reloads {
		if _, err := e.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			waitTraffic()
		}
	}
	close(stopTraffic)
	traffic.Wait()
	// idle workers take the last generation at once and close their old states: wait for that
	oldClosed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		cur := e.Generation()
		for _, st := range states {
			if st.gen != cur && st.closed.Load() == 0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(3 * time.Second); !oldClosed() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	cur := e.Generation()
	gensRouted := map[uint64]bool{}
	for _, st := range states {
		if st.routed.Load() > 0 {
			gensRouted[st.gen] = true
		}
		want := int32(1)
		if st.gen == cur {
			want = 0
		}
		if got := st.closed.Load(); got != want {
			t.Errorf("state of generation %d (current %d) closed %d times, want %d", st.gen, cur, got, want)
		}
	}
	if n := len(states); n != (reloads+1)*4 {
		t.Errorf("%d states built, want %d", n, (reloads+1)*4)
	}
	if len(gensRouted) < 2 {
		t.Errorf("traffic routed on %d generations: the reloads did not overlap it", len(gensRouted))
	}
	if b := bad.Load(); b != 0 {
		t.Errorf("%d messages routed on a closed state", b)
	}
	if got := e.Stats().requests.Load(); got == 0 {
		t.Errorf("no traffic routed")
	}
	if cur != reloads+1 {
		t.Errorf("generation %d, want %d", cur, reloads+1)
	}
}
