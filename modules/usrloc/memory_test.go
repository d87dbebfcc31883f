package usrloc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// clock is a settable Unix time for the store's now.
type clock struct{ t atomic.Int64 }

func newClock() *clock            { c := &clock{}; c.t.Store(1_700_000_000); return c }
func (c *clock) now() int64       { return c.t.Load() }
func (c *clock) add(sec int64)    { c.t.Add(sec) }
func (c *clock) at(d int64) int64 { return c.t.Load() + d }

func openTest(t testing.TB, o memOptions) *memStore {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s, err := openMemStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put replaces the bindings of aor (a registration that sets them all).
func put(t testing.TB, s Store, table, aor string, bs ...Binding) {
	t.Helper()
	if err := s.Update(table, aor, func([]Binding) ([]Binding, error) { return bs, nil }); err != nil {
		t.Fatal(err)
	}
}

func contacts(bs []Binding) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Contact
	}
	return out
}

func checkCounts(t *testing.T, s Store, aors, cts int) {
	t.Helper()
	if a, c := s.Counts(); a != aors || c != cts {
		t.Fatalf("Counts() = %d AORs, %d contacts; want %d, %d", a, c, aors, cts)
	}
}

func TestMemoryStore(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now})

	if bs, err := s.Lookup("location", "alice@example.org"); err != nil || bs != nil {
		t.Fatalf("empty Lookup = %v, %v; want nil, nil", bs, err)
	}
	checkCounts(t, s, 0, 0)

	a1 := Binding{Contact: "sip:alice@10.0.0.1:5060", CallID: "c1", Expires: clk.at(60), Q: -1, Socket: "udp:127.0.0.1:5060"}
	a2 := Binding{Contact: "sip:alice@10.0.0.2:5060", CallID: "c2", Expires: clk.at(10), Q: 500, Socket: "udp:127.0.0.1:5060"}
	put(t, s, "location", "alice@example.org", a1, a2)
	put(t, s, "", "bob@example.org", Binding{Contact: "sip:bob@10.0.0.3", Expires: clk.at(60)})
	put(t, s, "other", "alice@example.org", Binding{Contact: "sip:alice@other", Expires: clk.at(60)})
	checkCounts(t, s, 3, 4)

	for _, tc := range []struct {
		name       string
		table, aor string
		after      int64 // seconds from the start
		want       []string
	}{
		{"both live", "location", "alice@example.org", 0, []string{"sip:alice@10.0.0.1:5060", "sip:alice@10.0.0.2:5060"}},
		{"default table is location", "", "alice@example.org", 0, []string{"sip:alice@10.0.0.1:5060", "sip:alice@10.0.0.2:5060"}},
		{"other table", "other", "alice@example.org", 0, []string{"sip:alice@other"}},
		{"bob in location via empty table", "location", "bob@example.org", 0, []string{"sip:bob@10.0.0.3"}},
		{"unknown aor", "location", "carol@example.org", 0, []string{}},
		{"aor is case sensitive as stored", "location", "Alice@example.org", 0, []string{}},
		{"one second before expiry", "location", "alice@example.org", 9, []string{"sip:alice@10.0.0.1:5060", "sip:alice@10.0.0.2:5060"}},
		{"expired at Expires", "location", "alice@example.org", 10, []string{"sip:alice@10.0.0.1:5060"}},
		{"all expired", "location", "alice@example.org", 60, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := clk.now()
			clk.add(tc.after)
			defer clk.t.Store(start)
			bs, err := s.Lookup(tc.table, tc.aor)
			if err != nil {
				t.Fatal(err)
			}
			if got := contacts(bs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Lookup(%q, %q) = %v, want %v", tc.table, tc.aor, got, tc.want)
			}
			for _, b := range bs {
				if b.AOR != tc.aor {
					t.Fatalf("binding AOR = %q, want %q", b.AOR, tc.aor)
				}
			}
		})
	}

	// Update sees only the live bindings and its own copy of them.
	clk.add(10)
	err := s.Update("location", "alice@example.org", func(cur []Binding) ([]Binding, error) {
		if got := contacts(cur); fmt.Sprint(got) != "[sip:alice@10.0.0.1:5060]" {
			return nil, fmt.Errorf("Update saw %v", got)
		}
		cur[0].CSeq = 7 // in place: must not show through before Update stores it
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := s.Lookup("location", "alice@example.org")
	if len(bs) != 1 || bs[0].CSeq != 7 || bs[0].CallID != "c1" || bs[0].Socket != "udp:127.0.0.1:5060" {
		t.Fatalf("after Update: %+v", bs)
	}
	checkCounts(t, s, 3, 3) // the expired one went with the update

	// An error from fn changes nothing.
	boom := errors.New("boom")
	err = s.Update("location", "alice@example.org", func(cur []Binding) ([]Binding, error) {
		cur[0].Contact = "sip:changed"
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	if bs, _ := s.Lookup("location", "alice@example.org"); len(bs) != 1 || bs[0].Contact != "sip:alice@10.0.0.1:5060" {
		t.Fatalf("failed Update changed the bindings: %+v", bs)
	}

	// Returning nothing removes the AOR.
	put(t, s, "other", "alice@example.org")
	if bs, _ := s.Lookup("other", "alice@example.org"); bs != nil {
		t.Fatalf("removed AOR still has %v", bs)
	}
	checkCounts(t, s, 2, 2)
}

func TestMemoryDelete(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now})
	b := func(c string) Binding { return Binding{Contact: c, Expires: clk.at(100)} }
	for _, tc := range []struct {
		name, aor, contact string
		wantOK             bool
		wantLeft           []string
		aors, cts          int
	}{
		{"unknown aor", "nobody", "", false, []string{"sip:a", "sip:b", "sip:c"}, 1, 3},
		{"unknown contact", "u", "sip:none", false, []string{"sip:a", "sip:b", "sip:c"}, 1, 3},
		{"one contact", "u", "sip:b", true, []string{"sip:a", "sip:c"}, 1, 2},
		{"same contact again", "u", "sip:b", false, []string{"sip:a", "sip:c"}, 1, 2},
		{"last contacts one by one", "u", "sip:a", true, []string{"sip:c"}, 1, 1},
		{"the last removes the aor", "u", "sip:c", true, []string{}, 0, 0},
	} {
		if tc.name == "unknown aor" {
			put(t, s, "", "u", b("sip:a"), b("sip:b"), b("sip:c"))
		}
		ok, err := s.Delete("location", tc.aor, tc.contact)
		if err != nil || ok != tc.wantOK {
			t.Fatalf("%s: Delete = %v, %v; want %v", tc.name, ok, err, tc.wantOK)
		}
		bs, _ := s.Lookup("location", "u")
		if got := contacts(bs); fmt.Sprint(got) != fmt.Sprint(tc.wantLeft) {
			t.Fatalf("%s: left %v, want %v", tc.name, got, tc.wantLeft)
		}
		checkCounts(t, s, tc.aors, tc.cts)
	}
	put(t, s, "", "u", b("sip:a"), b("sip:b"))
	if ok, _ := s.Delete("", "u", ""); !ok {
		t.Fatal("Delete of every contact reported nothing removed")
	}
	checkCounts(t, s, 0, 0)
}

func TestMemoryRange(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now})
	for i := range 50 {
		put(t, s, "location", fmt.Sprintf("u%d", i),
			Binding{Contact: "sip:live", Expires: clk.at(100)},
			Binding{Contact: "sip:dead", Expires: clk.at(-1)})
	}
	put(t, s, "other", "x", Binding{Contact: "sip:x", Expires: clk.at(100)})

	count := func(table string, limit int) (n int, tables map[string]int) {
		tables = map[string]int{}
		err := s.Range(table, func(tn string, b *Binding) bool {
			if b.Contact == "sip:dead" {
				t.Fatalf("Range gave an expired binding of %s", b.AOR)
			}
			b.Contact = "modified" // a copy: must not change the store
			n++
			tables[tn]++
			return n < limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, tables
	}
	if n, tb := count("", 1000); n != 51 || tb["location"] != 50 || tb["other"] != 1 {
		t.Fatalf("Range all: %d %v", n, tb)
	}
	if n, _ := count("other", 1000); n != 1 {
		t.Fatalf("Range other: %d", n)
	}
	if n, _ := count("", 7); n != 7 {
		t.Fatalf("Range stopped after %d, want 7", n)
	}
	if bs, _ := s.Lookup("other", "x"); bs[0].Contact != "sip:x" {
		t.Fatal("Range's fn changed a stored binding")
	}
	// fn may change the store (a keepalive removing an unreachable contact) without a deadlock.
	err := s.Range("location", func(_ string, b *Binding) bool {
		if _, err := s.Delete("location", b.AOR, ""); err != nil {
			t.Fatal(err)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, 1, 1)
}

// Updates of one AOR from many goroutines are serialised: none is lost.
func TestMemoryUpdateAtomic(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now})
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				aor := "shared"
				if i%2 == 1 {
					aor = fmt.Sprintf("own%d-%d", w, i) // other shards and AORs in between
				}
				err := s.Update("", aor, func(cur []Binding) ([]Binding, error) {
					if len(cur) == 0 {
						return []Binding{{Contact: "sip:c", CSeq: 1, Expires: clk.at(100)}}, nil
					}
					cur[0].CSeq++
					return cur, nil
				})
				if err != nil {
					t.Error(err)
				}
				if _, err := s.Lookup("", "shared"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	bs, _ := s.Lookup("", "shared")
	if want := uint32(workers * each / 2); len(bs) != 1 || bs[0].CSeq != want {
		t.Fatalf("shared CSeq = %+v, want %d", bs, want)
	}
	checkCounts(t, s, 1+workers*each/2, 1+workers*each/2)
}

// The strings kept do not alias the caller's memory (a received message's buffer).
func TestMemoryCopiesStrings(t *testing.T) {
	s := openTest(t, memOptions{})
	buf := []byte("sip:u@h;x=1|callid|ua")
	b := Binding{Contact: string(buf[:11]), CallID: "callid", UserAgent: "ua", Expires: time.Now().Unix() + 60}
	put(t, s, "", "u", b)
	bs, _ := s.Lookup("", "u")
	if bs[0].Contact != "sip:u@h;x=1" || bs[0].CallID != "callid" || bs[0].UserAgent != "ua" || bs[0].Received != "" {
		t.Fatalf("stored %+v", bs[0])
	}
}

func TestMemoryExpireTimer(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now, Timer: 20 * time.Millisecond})
	put(t, s, "", "a", Binding{Contact: "sip:1", Expires: clk.at(5)}, Binding{Contact: "sip:2", Expires: clk.at(50)})
	put(t, s, "", "b", Binding{Contact: "sip:3", Expires: clk.at(5)})
	checkCounts(t, s, 2, 3)
	clk.add(5)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a, c := s.Counts(); a == 1 && c == 1 {
			break
		}
		if time.Now().After(deadline) {
			a, c := s.Counts()
			t.Fatalf("timer did not remove the expired bindings: %d AORs, %d contacts", a, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("timer goroutine still running after Close")
	}
}

// A refresh that changes one string stores the new value; one that changes nothing keeps the values.
func TestMemoryRefreshStrings(t *testing.T) {
	clk := newClock()
	s := openTest(t, memOptions{Now: clk.now})
	b := Binding{Contact: "sip:u@h", CallID: "c1", UserAgent: "UA/1", Socket: "udp:1.2.3.4:5060", Expires: clk.at(60)}
	put(t, s, "", "u", b)
	for _, tc := range []struct {
		name   string
		change func(*Binding)
	}{
		{"same", func(*Binding) {}},
		{"new call-id", func(b *Binding) { b.CallID = "c2" }},
		{"new user agent", func(b *Binding) { b.UserAgent = "UA/2" }},
		{"received set", func(b *Binding) { b.Received = "sip:9.9.9.9:1" }},
		{"path set", func(b *Binding) { b.Path = "<sip:p;lr>" }},
		{"new socket", func(b *Binding) { b.Socket = "tcp:1.2.3.4:5060" }},
		{"instance", func(b *Binding) { b.Instance = "<urn:x>" }},
	} {
		tc.change(&b)
		err := s.Update("", "u", func(cur []Binding) ([]Binding, error) {
			cur[0] = b
			return cur, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.Lookup("", "u")
		want := b
		want.AOR = "u"
		if len(got) != 1 || got[0] != want {
			t.Fatalf("%s: stored %+v, want %+v", tc.name, got, want)
		}
	}
}

// Update stores the copy it gave fn when fn changes it in place and returns it (no second copy); a
// reader's earlier Lookup still sees the bindings as they were, and the stored strings are the store's
// own even when fn put a view of a reused buffer into that copy.
func TestMemoryUpdateKeepsFnCopy(t *testing.T) {
	s := openTest(t, memOptions{})
	exp := time.Now().Unix() + 60
	put(t, s, "", "u", Binding{Contact: "sip:u@h", CallID: "c1", CSeq: 1, Expires: exp})
	before, _ := s.Lookup("", "u")
	buf := []byte("c2")
	var given []Binding
	err := s.Update("", "u", func(cur []Binding) ([]Binding, error) {
		cur[0].CSeq, cur[0].CallID = 2, unsafe.String(&buf[0], len(buf))
		given = cur
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	buf[1] = 'X' // the caller reuses its buffer
	after, _ := s.Lookup("", "u")
	if &after[0] != &given[0] {
		t.Errorf("the store copied fn's slice again instead of keeping it")
	}
	if len(before) != 1 || before[0].CSeq != 1 || before[0].CallID != "c1" {
		t.Errorf("an earlier Lookup changed under its reader: %+v", before)
	}
	if len(after) != 1 || after[0].CSeq != 2 || after[0].CallID != "c2" {
		t.Errorf("after Update: %+v", after)
	}
}
