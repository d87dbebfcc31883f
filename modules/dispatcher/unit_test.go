package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noResolve(context.Context, string) (netip.Addr, error) {
	return netip.Addr{}, errors.New("no DNS in tests")
}

func nowarn(string, ...any) {}

func TestParseListFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		want       []Dst
		err        string
	}{
		{"full", "# comment\n\n1 sip:10.0.0.1:5060 8 5 weight=50;duid=a\n 2\tsip:h.example # trailing\n",
			[]Dst{{Set: 1, URI: "sip:10.0.0.1:5060", Flags: 8, Priority: 5, Attrs: "weight=50;duid=a"}, {Set: 2, URI: "sip:h.example"}}, ""},
		{"no uri", "1\n", nil, "expected \"setid uri"},
		{"bad set", "x sip:a\n", nil, "set id"},
		{"bad flags", "1 sip:a z\n", nil, "flags"},
		{"bad priority", "1 sip:a 0 p\n", nil, "priority"},
		{"too many", "1 sip:a 0 0 a=b extra\n", nil, "expected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := parseListFile(path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %+v", got)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("line %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
	if _, err := parseListFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestOrderAndWeights: a set is ordered highest priority first, equal priorities in reverse file order
// (as Kamailio), and the weight table holds each destination's percentage.
func TestOrderAndWeights(t *testing.T) {
	l, err := buildList([]Dst{
		{Set: 1, URI: "sip:10.0.0.1", Attrs: "weight=10"},
		{Set: 1, URI: "sip:10.0.0.2", Attrs: "weight=20"},
		{Set: 1, URI: "sip:10.0.0.3", Priority: 1, Attrs: "weight=70;rweight=5"},
		{Set: 1, URI: "sip:h.invalid", Flags: stNoDNS},
	}, "t", nil, noResolve, nowarn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range l.sets[1].dests {
		got = append(got, d.uri)
	}
	if want := "sip:10.0.0.3 sip:h.invalid sip:10.0.0.2 sip:10.0.0.1"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	count := map[uint8]int{}
	for _, i := range l.sets[1].wlist {
		count[i]++
	}
	// weights by index: 70, 0 (h.invalid has none), 20, 10
	if count[0] != 70 || count[2] != 20 || count[3] != 10 {
		t.Errorf("weight slots %v", count)
	}
	if l.sets[1].dests[1].ip.IsValid() {
		t.Error("a host name with flag 16 was resolved")
	}
}

func TestRelativeWeightsFollowState(t *testing.T) {
	l, err := buildList([]Dst{
		{Set: 1, URI: "sip:10.0.0.1", Attrs: "rweight=1"},
		{Set: 1, URI: "sip:10.0.0.2", Attrs: "rweight=2"},
		{Set: 1, URI: "sip:10.0.0.3", Attrs: "rweight=7"},
	}, "t", nil, noResolve, nowarn)
	if err != nil {
		t.Fatal(err)
	}
	s := l.sets[1]
	slots := func() map[string]int {
		c := map[string]int{}
		for _, i := range s.rwlist.Load() {
			c[s.dests[i].uri]++
		}
		return c
	}
	if c := slots(); c["sip:10.0.0.3"] != 70 || c["sip:10.0.0.2"] != 20 || c["sip:10.0.0.1"] != 10 {
		t.Errorf("slots %v", c)
	}
	ds := New()
	ds.log = slog.New(slog.DiscardHandler)
	ds.list.Store(l)
	if err := ds.updateState(nil, 1, "sip:10.0.0.3", stInactive, rctx{}); err != nil {
		t.Fatal(err)
	}
	// the inactive one's share goes to the others (2:1, truncated: 66 + 33, the rest to the last)
	if c := slots(); c["sip:10.0.0.3"] != 0 || c["sip:10.0.0.2"] < 66 || c["sip:10.0.0.1"] < 33 {
		t.Errorf("after marking inactive: slots %v", c)
	}
}

// TestUpdateState follows Kamailio's ds_update_state through probing thresholds.
func TestUpdateState(t *testing.T) {
	type step struct {
		state uint32
		want  string
		event string
	}
	for _, c := range []struct {
		name          string
		probe, active int
		steps         []step
	}{
		{"threshold 1", 1, 1, []step{
			{stTrying | stProbing, "IP", evDown},
			{stTrying | stProbing, "IP", ""},
			{stProbing, "AP", evUp},
		}},
		{"threshold 3 down, 2 up", 3, 2, []step{
			{stTrying | stProbing, "TP", ""},
			{stTrying | stProbing, "TP", ""},
			{stProbing, "AP", ""}, // a success resets the failures
			{stTrying | stProbing, "TP", ""},
			{stTrying | stProbing, "TP", ""},
			{stTrying | stProbing, "IP", evDown},
			{stProbing, "IP", ""},
			{stProbing, "AP", evUp},
		}},
		{"script marks", 1, 1, []step{
			{stInactive, "IX", evDown},
			{0, "AX", evUp},
			{stDisabled | stInactive, "DX", evDown},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, _ := buildList([]Dst{{Set: 1, URI: "sip:10.0.0.1"}}, "t", nil, noResolve, nowarn)
			ds := New()
			ds.ProbingThreshold, ds.InactiveThreshold = c.probe, c.active
			ds.log = slog.New(slog.DiscardHandler)
			ds.list.Store(l)
			d := l.sets[1].dests[0]
			for i, s := range c.steps {
				before := ds.changes.Load()
				if err := ds.updateState(nil, 1, "SIP:10.0.0.1", s.state, rctx{}); err != nil {
					t.Fatal(err)
				}
				if got := flagString(d.state.Load()); got != s.want {
					t.Errorf("step %d: flags %s, want %s", i, got, s.want)
				}
				if changed := ds.changes.Load() != before; changed != (s.event != "") {
					t.Errorf("step %d: event fired = %v, want %q", i, changed, s.event)
				}
			}
		})
	}
}

func TestHashKeys(t *testing.T) {
	for _, c := range []struct{ uri, k1, k2 string }{
		{"sip:alice@example.net", "alice", "example.net"},
		{"sip:alice@example.net:5060", "alice", "example.net"},
		{"sip:alice@example.net:5070;transport=tcp", "alice", "example.net:5070"},
		{"sips:bob@example.net:5061", "bob", "example.net"},
		{"sips:bob@example.net:5060", "bob", "example.net:5060"},
		{"sip:[2001:db8::1]:5062", "", "[2001:db8::1]:5062"},
	} {
		k1, k2, ok := uriHashKeys(c.uri, false)
		if !ok || k1 != c.k1 || k2 != c.k2 {
			t.Errorf("%s: %q %q %v, want %q %q", c.uri, k1, k2, ok, c.k1, c.k2)
		}
	}
	if _, _, ok := uriHashKeys("not a uri", false); ok {
		t.Error("garbage hashed")
	}
	if dsHash("", "") != 1 && dsHash("", "") == 0 {
		t.Error("hash 0 must become 1")
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int
	}{{"a", 0}, {"ip", stInactive | stProbing}, {"D", stDisabled}, {"tP", stTrying | stProbing}, {"x", -1}} {
		if got := parseFlags(c.s); got != c.want {
			t.Errorf("parseFlags(%q) = %d, want %d", c.s, got, c.want)
		}
	}
	for st, want := range map[uint32]string{0: "AX", stProbing: "AP", stInactive | stProbing: "IP", stDisabled: "DX", stTrying: "TX"} {
		if got := flagString(st); got != want {
			t.Errorf("flagString(%d) = %s, want %s", st, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*Dispatcher)
		err  string
	}{
		{"ok", func(d *Dispatcher) {}, ""},
		{"bad uri", func(d *Dispatcher) { d.Dst[0].URI = "http://x" }, "dst[0]: uri"},
		{"bad flags", func(d *Dispatcher) { d.Flags = 7 }, "flags: expected 0..3"},
		{"probing mode", func(d *Dispatcher) { d.ProbingMode = 4 }, "ds_probing_mode"},
		{"threshold", func(d *Dispatcher) { d.ProbingThreshold = 0 }, "ds_probing_threshold"},
		{"reply codes", func(d *Dispatcher) { d.PingReplyCodes = "code=404;klass=3" }, "ds_ping_reply_codes"},
		{"method", func(d *Dispatcher) { d.PingMethod = "options" }, "ds_ping_method"},
		{"from", func(d *Dispatcher) { d.PingFrom = "dispatcher" }, "ds_ping_from"},
		{"pv", func(d *Dispatcher) { d.SetidPVName = "avp(x)" }, "setid_pvname"},
		{"callback", func(d *Dispatcher) { d.EventCallback = "f()" }, "event_callback"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := New()
			d.Dst = []Dst{{Set: 1, URI: "sip:10.0.0.1"}}
			c.set(d)
			err := d.Validate()
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
	d := New()
	d.PingReplyCodes = "code=404;class=3"
	d.Dst = []Dst{{Set: 1, URI: "sip:10.0.0.1"}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{404: true, 302: true, 486: false, 200: false} {
		if d.replyCodeOK(code) != want {
			t.Errorf("replyCodeOK(%d) = %v", code, !want)
		}
	}
}

// TestLatencyStats: Kamailio's ds_update_latency arithmetic: the average and standard deviation of the
// samples, their maximum, the estimate equal to the average for the first 10 samples and then weighted by
// alpha, and the timeouts counted apart.
func TestLatencyStats(t *testing.T) {
	var l latency
	for _, ms := range []int{10, 20, 30, 40} {
		l.add(time.Duration(ms)*time.Millisecond, 0.9)
	}
	l.timeout()
	r := l.rpc()
	if r["AVG"] != 25.0 || r["MAX"] != 40.0 || r["EST"] != 25.0 || r["TIMEOUT"] != 1 || r["STD"] != 12.91 {
		t.Fatalf("after 4 samples: %v", r)
	}
	for range 6 {
		l.add(25*time.Millisecond, 0.9)
	}
	l.add(125*time.Millisecond, 0.9) // the 11th sample: est = 0.9·25 + 0.1·125
	if r := l.rpc(); r["EST"] != 35.0 || r["MAX"] != 125.0 {
		t.Fatalf("after 11 samples: %v", r)
	}
}
