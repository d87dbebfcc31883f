package usrloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// testRedis is a redis-server the test started on a free port, without persistence.
type testRedis struct{ *enginetest.Redis }

func startRedis(t testing.TB) *testRedis { return &testRedis{enginetest.StartRedis(t)} }

func (r *testRedis) url() string { return r.URL() }
func (r *testRedis) start()      { r.Start() }
func (r *testRedis) kill()       { r.Kill() }

// raw returns a plain client (no client-side cache) to look at the server behind the store's back.
func (r *testRedis) raw(t testing.TB) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()},
		DisableCache: true})
	if err != nil {
		t.Fatalf("raw redis client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// commandCalls returns how many times the server ran cmd (INFO commandstats).
func redisCommandCalls(t testing.TB, c rueidis.Client, cmd string) int {
	t.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func newTestRedisStore(t testing.TB, url string, timeoutMS int) (*redisStore, *enginetest.LogBuffer) {
	t.Helper()
	u := New()
	u.Backend, u.RedisURL, u.RedisTimeout, u.RedisPrefix = "redis", url, timeoutMS, "test:ul:"
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &enginetest.LogBuffer{}
	env := &engine.Env{Log: slog.New(slog.NewTextHandler(logs, nil)).With("module", "usrloc")}
	st, err := newRedisStore(u, env)
	if err != nil {
		t.Fatalf("newRedisStore: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*redisStore), logs
}

func redisBinding(aor, contact string, expiresIn int64) Binding {
	now := time.Now().Unix()
	return Binding{AOR: aor, Contact: contact, Received: "sip:192.0.2.1:5070;transport=udp", Path: "<sip:p1>,<sip:p2;lr>",
		Socket: "udp:127.0.0.1:5060", CallID: "cid-" + contact, UserAgent: "ua/1.0", Instance: "<urn:uuid:1>",
		Expires: now + expiresIn, Modified: now, CSeq: 7, Q: 500, RegID: 1, Flags: 2, CFlags: 1 << 40, Methods: 0x1f}
}

// add returns an Update fn that adds (or replaces, by Contact) b.
func redisAdd(b Binding) func([]Binding) ([]Binding, error) {
	return func(cur []Binding) ([]Binding, error) {
		out := slices.DeleteFunc(cur, func(x Binding) bool { return x.Contact == b.Contact })
		return append(out, b), nil
	}
}

// eventually polls cond until it holds or d passes.
func redisEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

func redisLookup(t *testing.T, s Store, table, aor string) []Binding {
	t.Helper()
	bs, err := s.Lookup(table, aor)
	if err != nil {
		t.Fatalf("Lookup(%s, %s): %v", table, aor, err)
	}
	return bs
}

func TestRedisStoreOperations(t *testing.T) {
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.url(), 5000)
	raw := r.raw(t)
	const aor = "alice@example.com"

	steps := []struct {
		name string
		do   func() error
		want []string // contacts of aor in "location" afterwards, in order
	}{
		{"empty", func() error { return nil }, nil},
		{"add first", func() error { return s.Update("location", aor, redisAdd(redisBinding(aor, "sip:a@1.1.1.1", 60))) }, []string{"sip:a@1.1.1.1"}},
		{"add second", func() error { return s.Update("location", aor, redisAdd(redisBinding(aor, "sip:b@2.2.2.2", 60))) },
			[]string{"sip:a@1.1.1.1", "sip:b@2.2.2.2"}},
		{"refresh first keeps order of fn", func() error { return s.Update("location", aor, redisAdd(redisBinding(aor, "sip:a@1.1.1.1", 120))) },
			[]string{"sip:b@2.2.2.2", "sip:a@1.1.1.1"}},
		{"same contact twice is kept twice", func() error {
			return s.Update("location", aor, func(cur []Binding) ([]Binding, error) {
				return append(cur, redisBinding(aor, "sip:b@2.2.2.2", 30)), nil
			})
		}, []string{"sip:b@2.2.2.2", "sip:a@1.1.1.1", "sip:b@2.2.2.2"}},
		{"fn error changes nothing", func() error {
			err := s.Update("location", aor, func([]Binding) ([]Binding, error) { return nil, errors.New("no") })
			if err == nil || err.Error() != "no" {
				return fmt.Errorf("Update: want fn's error as is, got %v", err)
			}
			return nil
		}, []string{"sip:b@2.2.2.2", "sip:a@1.1.1.1", "sip:b@2.2.2.2"}},
		{"delete one contact", func() error {
			ok, err := s.Delete("location", aor, "sip:b@2.2.2.2")
			if err == nil && !ok {
				return errors.New("Delete reported nothing removed")
			}
			return err
		}, []string{"sip:a@1.1.1.1"}},
		{"delete unknown contact", func() error {
			ok, err := s.Delete("location", aor, "sip:nobody@3.3.3.3")
			if err == nil && ok {
				return errors.New("Delete of an unknown contact reported a removal")
			}
			return err
		}, []string{"sip:a@1.1.1.1"}},
		{"delete all", func() error {
			ok, err := s.Delete("location", aor, "")
			if err == nil && !ok {
				return errors.New("Delete all reported nothing removed")
			}
			return err
		}, nil},
		{"delete all again", func() error {
			ok, err := s.Delete("location", aor, "")
			if err == nil && ok {
				return errors.New("second Delete all reported a removal")
			}
			return err
		}, nil},
		{"update to nothing removes the key", func() error {
			if err := s.Update("location", aor, redisAdd(redisBinding(aor, "sip:c@3.3.3.3", 60))); err != nil {
				return err
			}
			return s.Update("location", aor, func([]Binding) ([]Binding, error) { return nil, nil })
		}, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// A node reads its own writes at once (no waiting for Redis's invalidation push).
		if got := contacts(redisLookup(t, s, "location", aor)); !slices.Equal(got, st.want) {
			t.Fatalf("%s: contacts %q, want %q", st.name, got, st.want)
		}
	}
	if n, _ := raw.Do(context.Background(), raw.B().Exists().Key("test:ul:location:"+aor).Build()).AsInt64(); n != 0 {
		t.Fatalf("the AOR's key still exists after its last binding went")
	}

	// Every field of a binding survives the trip.
	want := redisBinding(aor, "sip:full@4.4.4.4;transport=tcp", 90)
	if err := s.Update("location", aor, redisAdd(want)); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "full binding visible", func() bool { return len(redisLookup(t, s, "location", aor)) == 1 })
	if got := redisLookup(t, s, "location", aor)[0]; got != want {
		t.Fatalf("binding changed on the way:\n got %+v\nwant %+v", got, want)
	}

	// Tables are apart; Range sees one table or all, Counts counts after the next recount.
	if err := s.Update("other", aor, redisAdd(redisBinding(aor, "sip:o@5.5.5.5", 60))); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("location", "bob", redisAdd(redisBinding("bob", "sip:bob@6.6.6.6", 60))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "other table visible", func() bool { return len(redisLookup(t, s, "other", aor)) == 1 })
	if got := contacts(redisLookup(t, s, "location", aor)); len(got) != 1 {
		t.Fatalf("location table got the other table's binding: %q", got)
	}
	seen := map[string][]string{}
	if err := s.Range("", func(table string, b *Binding) bool {
		seen[table] = append(seen[table], b.AOR+" "+b.Contact)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for k := range seen {
		slices.Sort(seen[k])
	}
	wantSeen := map[string][]string{"location": {aor + " " + want.Contact, "bob sip:bob@6.6.6.6"}, "other": {aor + " sip:o@5.5.5.5"}}
	slices.Sort(wantSeen["location"])
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Fatalf("Range(\"\"): %v, want %v", seen, wantSeen)
	}
	n := 0
	if err := s.Range("other", func(table string, b *Binding) bool { n++; return table == "other" }); err != nil || n != 1 {
		t.Fatalf("Range(other): %d bindings, err %v; want 1", n, err)
	}
	n = 0
	if err := s.Range("location", func(string, *Binding) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("Range stopping at once called fn %d times (err %v), want 1", n, err)
	}
	if a, c, err := s.countAll(); err != nil || a != 3 || c != 3 {
		t.Fatalf("countAll = %d AORs %d contacts (%v), want 3, 3", a, c, err)
	}
	// One node counts per interval and shares the result: the counts key holds it, the gauges show it.
	if err := raw.Do(context.Background(), raw.B().Del().Key("test:ul:#countlock").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.recount(); err != nil {
		t.Fatal(err)
	}
	if a, c := s.Counts(); a != 3 || c != 3 {
		t.Fatalf("Counts = %d AORs %d contacts, want 3, 3", a, c)
	}
	hlens := redisCommandCalls(t, raw, "hlen")
	other, _ := newTestRedisStore(t, r.url(), 5000)
	if err := other.recount(); err != nil { // the lock is taken: it reads the shared result
		t.Fatal(err)
	}
	if a, c := other.Counts(); a != 3 || c != 3 {
		t.Fatalf("second node's Counts = %d AORs %d contacts, want the shared 3, 3", a, c)
	}
	if n := redisCommandCalls(t, raw, "hlen") - hlens; n != 0 {
		t.Fatalf("the second node made %d HLENs, want 0 (one node counts)", n)
	}
}

func TestRedisLookupWarmNoRoundTrip(t *testing.T) {
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.url(), 5000)
	raw := r.raw(t)
	if err := s.Update("location", "carol", redisAdd(redisBinding("carol", "sip:carol@1.1.1.1", 60))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "binding visible", func() bool { return len(redisLookup(t, s, "location", "carol")) == 1 })
	redisLookup(t, s, "location", "nobody") // unknown AORs are cached as such too
	before := redisCommandCalls(t, raw, "hgetall")
	for range 200 {
		if len(redisLookup(t, s, "location", "carol")) != 1 || len(redisLookup(t, s, "location", "nobody")) != 0 {
			t.Fatal("warm lookup answered wrong")
		}
	}
	if after := redisCommandCalls(t, raw, "hgetall"); after != before {
		t.Fatalf("400 warm lookups made %d HGETALLs, want 0", after-before)
	}
}

func TestRedisExpiry(t *testing.T) {
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.url(), 5000)
	raw := r.raw(t)
	ctx := context.Background()
	if err := s.Update("location", "dave", func([]Binding) ([]Binding, error) {
		return []Binding{redisBinding("dave", "sip:short@1.1.1.1", 1), redisBinding("dave", "sip:long@2.2.2.2", 3)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	key := "test:ul:location:dave"
	pttl, _ := raw.Do(ctx, raw.B().Pttl().Key(key).Build()).AsInt64()
	if pttl < 1000 || pttl > 3000 {
		t.Fatalf("PTTL of the AOR = %d ms, want the latest expiry (2..3 s)", pttl)
	}
	// An already-expired binding from fn is not stored.
	if err := s.Update("location", "erin", redisAdd(redisBinding("erin", "sip:old@1.1.1.1", -1))); err != nil {
		t.Fatal(err)
	}
	if n, _ := raw.Do(ctx, raw.B().Exists().Key("test:ul:location:erin").Build()).AsInt64(); n != 0 {
		t.Fatal("an expired binding created a key")
	}
	redisEventually(t, 3*time.Second, "short binding filtered on read", func() bool {
		return slices.Equal(contacts(redisLookup(t, s, "location", "dave")), []string{"sip:long@2.2.2.2"})
	})
	// The next update drops the expired field from the hash.
	if err := s.Update("location", "dave", func(cur []Binding) ([]Binding, error) { return cur, nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := raw.Do(ctx, raw.B().Hlen().Key(key).Build()).AsInt64(); n != 2 { // version + long
		t.Fatalf("HLEN after update = %d, want 2 (expired field removed)", n)
	}
	// The key goes by itself, without any update.
	redisEventually(t, 5*time.Second, "key expired by Redis", func() bool {
		n, _ := raw.Do(ctx, raw.B().Exists().Key(key).Build()).AsInt64()
		return n == 0
	})
	if bs := redisLookup(t, s, "location", "dave"); len(bs) != 0 {
		t.Fatalf("expired AOR still found: %q", contacts(bs))
	}
}

// Two stores on one server are two siplua nodes.
func TestRedisTwoNodes(t *testing.T) {
	r := startRedis(t)
	// A long redis_timeout: the concurrent updates below must not run out of time on a loaded machine.
	a, _ := newTestRedisStore(t, r.url(), 10000)
	b, _ := newTestRedisStore(t, r.url(), 10000)
	const aor = "frank@example.com"

	// B caches "no bindings", then A registers: B sees it within a second (invalidation, not expiry).
	if bs := redisLookup(t, b, "location", aor); len(bs) != 0 {
		t.Fatalf("fresh server has bindings: %v", bs)
	}
	if err := a.Update("location", aor, redisAdd(redisBinding(aor, "sip:f1@1.1.1.1", 3600))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "A's registration seen by B", func() bool { return len(redisLookup(t, b, "location", aor)) == 1 })
	// B has it cached now; A changes it: B sees the change.
	redisLookup(t, a, "location", aor)
	if err := a.Update("location", aor, redisAdd(redisBinding(aor, "sip:f2@2.2.2.2", 3600))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "A's second contact seen by B", func() bool { return len(redisLookup(t, b, "location", aor)) == 2 })
	// Delete via B: A (which had it cached) no longer finds it.
	if len(redisLookup(t, a, "location", aor)) != 2 {
		t.Fatal("A does not see its own two contacts")
	}
	if ok, err := b.Delete("location", aor, "sip:f1@1.1.1.1"); err != nil || !ok {
		t.Fatalf("Delete via B: %v %v", ok, err)
	}
	redisEventually(t, time.Second, "B's delete of one contact seen by A", func() bool {
		return slices.Equal(contacts(redisLookup(t, a, "location", aor)), []string{"sip:f2@2.2.2.2"})
	})
	if ok, err := b.Delete("location", aor, ""); err != nil || !ok {
		t.Fatalf("Delete all via B: %v %v", ok, err)
	}
	redisEventually(t, time.Second, "B's delete of the AOR seen by A", func() bool { return len(redisLookup(t, a, "location", aor)) == 0 })

	// Concurrent updates of one AOR from both nodes lose nothing (compare-and-set with retries).
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+2)
	for w := range writers {
		st := a
		if w%2 == 1 {
			st = b
		}
		wg.Go(func() {
			for i := range each {
				c := fmt.Sprintf("sip:w%d-%d@10.0.0.1", w, i)
				if err := st.Update("location", "busy", redisAdd(redisBinding("busy", c, 3600))); err != nil {
					errs <- err
				}
			}
		})
	}
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for _, st := range []*redisStore{a, b} {
		readers.Go(func() { // lookups race the writes (and the invalidations) on both nodes
			for {
				select {
				case <-stopReaders:
					return
				default:
				}
				if _, err := st.Lookup("location", "busy"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stopReaders)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Update: %v", err)
	}
	for _, st := range []*redisStore{a, b} {
		redisEventually(t, time.Second, "all concurrent contacts stored", func() bool {
			return len(redisLookup(t, st, "location", "busy")) == writers*each
		})
	}
}

func TestRedisOutage(t *testing.T) {
	r := startRedis(t)
	const timeoutMS = 200
	a, logs := newTestRedisStore(t, r.url(), timeoutMS)
	b, _ := newTestRedisStore(t, r.url(), timeoutMS)
	// (polled: on a loaded machine one call may exceed the short timeout and take the store down a moment)
	redisEventually(t, 5*time.Second, "first Update", func() bool {
		return a.Update("location", "gina", redisAdd(redisBinding("gina", "sip:gina@1.1.1.1", 3600))) == nil
	})
	for _, st := range []*redisStore{a, b} {
		redisEventually(t, time.Second, "binding visible", func() bool { return len(redisLookup(t, st, "location", "gina")) == 1 })
	}

	r.kill()
	// Updates fail quickly with ErrUnavailable: the first within redis_timeout, the next at once.
	for i := range 50 {
		start := time.Now()
		err := a.Update("location", "gina", redisAdd(redisBinding("gina", "sip:gina2@2.2.2.2", 3600)))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Update %d with Redis down: %v, want ErrUnavailable", i, err)
		}
		if d := time.Since(start); d > 3*timeoutMS*time.Millisecond {
			t.Fatalf("Update %d with Redis down took %v (redis_timeout %d ms)", i, d, timeoutMS)
		}
	}
	if _, err := b.Delete("location", "gina", ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Delete with Redis down: %v, want ErrUnavailable", err)
	}
	if err := b.Range("", func(string, *Binding) bool { return true }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Range with Redis down: %v, want ErrUnavailable", err)
	}
	// Lookups answer from the last known value, on both nodes, quickly.
	for _, st := range []*redisStore{a, b} {
		for range 50 {
			start := time.Now()
			bs, err := st.Lookup("location", "gina")
			if err != nil || len(bs) != 1 || bs[0].Contact != "sip:gina@1.1.1.1" {
				t.Fatalf("Lookup with Redis down: %v %v, want the cached binding", contacts(bs), err)
			}
			if d := time.Since(start); d > 3*timeoutMS*time.Millisecond {
				t.Fatalf("Lookup with Redis down took %v", d)
			}
		}
	}
	if _, err := a.Lookup("location", "never-seen"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lookup of an unknown AOR with Redis down: %v, want ErrUnavailable", err)
	}
	if n := strings.Count(logs.String(), "redis unreachable"); n < 1 || n > 2 {
		t.Fatalf("%d 'redis unreachable' log lines for 100 failed calls, want 1..2 (rate-limited):\n%s", n, logs)
	}

	// Redis is back (empty: it had no persistence): both nodes recover.
	r.start()
	redisEventually(t, 5*time.Second, "Update works again", func() bool {
		return a.Update("location", "gina", redisAdd(redisBinding("gina", "sip:gina3@3.3.3.3", 3600))) == nil
	})
	for _, st := range []*redisStore{a, b} {
		redisEventually(t, 5*time.Second, "lookup reads the new server", func() bool {
			bs, err := st.Lookup("location", "gina")
			return err == nil && slices.Equal(contacts(bs), []string{"sip:gina3@3.3.3.3"})
		})
	}
	// And invalidation works again across nodes.
	if err := b.Update("location", "gina", redisAdd(redisBinding("gina", "sip:gina4@4.4.4.4", 3600))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "B's update after recovery seen by A", func() bool { return len(redisLookup(t, a, "location", "gina")) == 2 })
	if !strings.Contains(logs.String(), "redis reachable again") {
		t.Fatalf("no recovery logged:\n%s", logs)
	}
}

func TestRedisStartsWhileDown(t *testing.T) {
	r := startRedis(t)
	r.kill()
	s, _ := newTestRedisStore(t, r.url(), 200)
	if err := s.Update("location", "hank", redisAdd(redisBinding("hank", "sip:h@1.1.1.1", 60))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Update before Redis ever answered: %v, want ErrUnavailable", err)
	}
	if _, err := s.Lookup("location", "hank"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lookup before Redis ever answered: %v, want ErrUnavailable", err)
	}
	r.start()
	redisEventually(t, 5*time.Second, "store connects once Redis is up", func() bool {
		return s.Update("location", "hank", redisAdd(redisBinding("hank", "sip:h@1.1.1.1", 60))) == nil
	})
	redisEventually(t, time.Second, "binding visible", func() bool { return len(redisLookup(t, s, "location", "hank")) == 1 })
}

func TestRedisBadConfig(t *testing.T) {
	for _, url := range []string{"http://127.0.0.1:1", "redis://127.0.0.1:1/notanumber", "redis://h:1?addr=h:2"} {
		u := New()
		u.Backend, u.RedisURL = "redis", url
		if _, err := newRedisStore(u, &engine.Env{Log: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "redis_url") {
			t.Errorf("redis_url %q: error %v, want a redis_url error", url, err)
		}
	}
}

// Redis answering "no" at start (here: a password is needed) is a configuration error, not an outage.
func TestRedisRefusedAtStart(t *testing.T) {
	r := startRedis(t)
	raw := r.raw(t)
	if err := raw.Do(context.Background(), raw.B().ConfigSet().ParameterValue().ParameterValue("requirepass", "secret").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	u := New()
	u.Backend, u.RedisURL = "redis", r.url()
	if _, err := newRedisStore(u, &engine.Env{Log: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("no password for a server that wants one: %v, want a NOAUTH error", err)
	}
	u.RedisURL = strings.Replace(r.url(), "redis://", "redis://:secret@", 1)
	st, err := newRedisStore(u, &engine.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("with the password: %v", err)
	}
	defer st.Close()
	if err := st.Update("location", "pw", redisAdd(redisBinding("pw", "sip:pw@1.1.1.1", 60))); err != nil {
		t.Fatal(err)
	}
}

// A hash written by something else (or an older format) is skipped, never a crash.
func TestRedisForeignData(t *testing.T) {
	r := startRedis(t)
	s, logs := newTestRedisStore(t, r.url(), 5000)
	raw := r.raw(t)
	ctx := context.Background()
	good := string(appendBinding(nil, 0, &Binding{Contact: "sip:ok@1.1.1.1", Expires: time.Now().Unix() + 60}))
	if err := raw.Do(ctx, raw.B().Hset().Key("test:ul:location:ivy").FieldValue().FieldValue("#v", "x").
		FieldValue("c:sip:ok@1.1.1.1", good).FieldValue("c:junk", "\x01\xff").FieldValue("c:empty", "").
		FieldValue("c:future", "\x09abc").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Do(ctx, raw.B().Set().Key("test:ul:location:str").Value("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got := contacts(redisLookup(t, s, "location", "ivy")); !slices.Equal(got, []string{"sip:ok@1.1.1.1"}) {
		t.Fatalf("lookup over foreign fields: %q", got)
	}
	if !strings.Contains(logs.String(), "cannot be decoded") {
		t.Fatalf("undecodable fields not logged:\n%s", logs)
	}
	if _, err := s.Lookup("location", "str"); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("lookup of a non-hash key: %v, want a WRONGTYPE error (not unavailable)", err)
	}
	if err := s.Update("location", "ivy", redisAdd(redisBinding("ivy", "sip:new@2.2.2.2", 60))); err != nil {
		t.Fatal(err)
	}
	redisEventually(t, time.Second, "update over foreign data", func() bool { return len(redisLookup(t, s, "location", "ivy")) == 2 })
	if err := s.Range("location", func(string, *Binding) bool { return true }); err != nil {
		t.Fatalf("Range over a non-hash key: %v", err)
	}
}

func TestRedisCodec(t *testing.T) {
	b := redisBinding("x", "sip:x@1.1.1.1", 60)
	b.Q, b.RegID, b.Expires, b.Modified = -1, -5, -3, 1<<40
	enc := string(appendBinding(nil, 3, &b))
	var got Binding
	idx, err := decodeBinding(enc, "x", &got)
	if err != nil || idx != 3 || got != b {
		t.Fatalf("round trip: idx %d err %v\n got %+v\nwant %+v", idx, err, got, b)
	}
	// Every truncation and a trailing byte are errors, never panics.
	for i := range len(enc) {
		if _, err := decodeBinding(enc[:i], "x", &got); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := decodeBinding(enc+"x", "x", &got); err == nil {
		t.Fatal("trailing byte: no error")
	}
	if _, err := decodeBinding("\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "x", &got); err == nil {
		t.Fatal("overlong varint: no error")
	}
}

func FuzzRedisDecodeBinding(f *testing.F) {
	b := redisBinding("x", "sip:x@1.1.1.1", 60)
	f.Add(string(appendBinding(nil, 0, &b)))
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		var got Binding
		if _, err := decodeBinding(v, "x", &got); err == nil {
			if re := string(appendBinding(nil, 0, &got)); len(re) == 0 {
				t.Fatal("decoded binding does not encode")
			}
		}
	})
}

func redisBenchStore(b *testing.B) (*redisStore, *testRedis) {
	r := startRedis(b)
	s, _ := newTestRedisStore(b, r.url(), 5000)
	if err := s.Update("location", "bench@example.com", func([]Binding) ([]Binding, error) {
		return []Binding{redisBinding("bench@example.com", "sip:b1@1.1.1.1", 3600), redisBinding("bench@example.com", "sip:b2@2.2.2.2", 3600)}, nil
	}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	return s, r
}

// BenchmarkRedisLookupWarm: the routing path when nothing changed (local cache, no round trip).
func BenchmarkRedisLookupWarm(b *testing.B) {
	s, _ := redisBenchStore(b)
	if bs, err := s.Lookup("location", "bench@example.com"); err != nil || len(bs) != 2 {
		b.Fatal(bs, err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if bs, _ := s.Lookup("location", "bench@example.com"); len(bs) != 2 {
				b.Fatal("lost")
			}
		}
	})
}

// BenchmarkRedisLookupWarmSerial: the same from one goroutine.
func BenchmarkRedisLookupWarmSerial(b *testing.B) {
	s, _ := redisBenchStore(b)
	if bs, err := s.Lookup("location", "bench@example.com"); err != nil || len(bs) != 2 {
		b.Fatal(bs, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if bs, _ := s.Lookup("location", "bench@example.com"); len(bs) != 2 {
			b.Fatal("lost")
		}
	}
}

// BenchmarkRedisLookupDoCacheHit: what the lookup would cost on rueidis's own cache alone (hit, decode).
func BenchmarkRedisLookupDoCacheHit(b *testing.B) {
	s, _ := redisBenchStore(b)
	c := s.conn()
	key := s.key("location", "bench@example.com")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, err := c.DoCache(ctx, c.B().Hgetall().Key(key).Cache(), time.Minute).AsStrMap()
		if err != nil {
			b.Fatal(err)
		}
		if bs, _, _ := decodeHash(h, "bench@example.com"); len(bs) != 2 {
			b.Fatal("lost")
		}
	}
}

// BenchmarkRedisLookupRoundTrip: a lookup that must ask Redis (cache miss: HGETALL and decode).
func BenchmarkRedisLookupRoundTrip(b *testing.B) {
	s, _ := redisBenchStore(b)
	c := s.conn()
	key := []byte(s.key("location", "bench@example.com"))
	b.ReportAllocs()
	for b.Loop() {
		if bs, _, err := s.read(context.Background(), c, key, "bench@example.com", readPlain); err != nil || len(bs) != 2 {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisUpdate: one REGISTER refresh (cached read, fn, EVALSHA compare-and-set).
func BenchmarkRedisUpdate(b *testing.B) {
	s, _ := redisBenchStore(b)
	nb := redisBinding("bench@example.com", "sip:b1@1.1.1.1", 3600)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update("location", "bench@example.com", redisAdd(nb)); err != nil {
			b.Fatal(err)
		}
	}
}
