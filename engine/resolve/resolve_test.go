package resolve_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/resolve"
	"github.com/siplua/siplua/luabind/enginetest"
)

func zone(t *testing.T) *enginetest.DNSServer {
	d := enginetest.StartDNS(t)
	d.Add(t,
		"a.test. 60 IN A 127.0.0.1", "b.test. 60 IN A 127.0.0.2", "c.test. 60 IN AAAA ::1",
		"_sip._udp.srv.test. 60 IN SRV 20 0 5080 b.test.", "_sip._udp.srv.test. 60 IN SRV 10 0 5070 a.test.",
		"_sip._tcp.srv.test. 60 IN SRV 10 0 5071 a.test.",
		`naptr.test. 60 IN NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.srv.test.`,
		`naptr.test. 60 IN NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.srv.test.`,
		`naptr.test. 60 IN NAPTR 5 10 "s" "SIPS+D2T" "" _sips._tcp.srv.test.`,
		"host.test. 60 IN A 127.0.0.3", "host.test. 60 IN AAAA ::1",
		"_sip._tcp.tcponly.test. 60 IN SRV 10 0 5072 a.test.", "tcponly.test. 60 IN A 127.0.0.9",
	)
	return d
}

func newResolver(t *testing.T, d *enginetest.DNSServer, cfg resolve.Config) *resolve.Resolver {
	cfg.Servers = []string{d.Addr}
	cfg.HostsFile = "-"
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	r, err := resolve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func str(ss []resolve.Server) string {
	s := ""
	for _, x := range ss {
		s += x.Transport + ":" + x.Addr.String() + " "
	}
	return s
}

// RFC 3263 §4: NAPTR, then SRV by priority, then A/AAAA; a port or a transport in the URI skips steps.
func TestRFC3263Order(t *testing.T) {
	d := zone(t)
	r := newResolver(t, d, resolve.Config{})
	for _, tc := range []struct {
		host      string
		port      int
		transport string
		want      string
	}{
		{"srv.test", 0, "udp", "udp:127.0.0.1:5070 udp:127.0.0.2:5080 "},
		{"srv.test", 0, "tcp", "tcp:127.0.0.1:5071 "},
		{"naptr.test", 0, "", "tcp:127.0.0.1:5071 udp:127.0.0.1:5070 udp:127.0.0.2:5080 "}, // SIPS skipped, order 10 first
		{"srv.test", 0, "", "udp:127.0.0.1:5070 udp:127.0.0.2:5080 tcp:127.0.0.1:5071 "},   // no NAPTR: SRV per transport
		{"host.test", 0, "", "udp:127.0.0.3:5060 udp:[::1]:5060 "},                         // no SRV: A then AAAA, 5060
		{"host.test", 5090, "tcp", "tcp:127.0.0.3:5090 tcp:[::1]:5090 "},                   // a port: no SRV
		{"tcponly.test", 5090, "", "udp:127.0.0.9:5090 "},
		{"c.test", 0, "tcp", "tcp:[::1]:5060 "},
		{"127.0.0.7", 0, "", "udp:127.0.0.7:5060 "},
		{"::1", 5070, "tcp", "tcp:[::1]:5070 "},
	} {
		t.Run(fmt.Sprintf("%s:%d;%s", tc.host, tc.port, tc.transport), func(t *testing.T) {
			got, err := r.Lookup(tc.host, tc.port, tc.transport)
			if err != nil {
				t.Fatal(err)
			}
			if str(got) != tc.want {
				t.Errorf("got %s, want %s", str(got), tc.want)
			}
		})
	}
}

// An IP literal never reaches DNS; an answer is cached (positive and negative) until its TTL.
func TestCache(t *testing.T) {
	d := zone(t)
	r := newResolver(t, d, resolve.Config{})
	if _, err, ok := r.Cached("127.0.0.1", 0, ""); !ok || err != nil {
		t.Fatalf("IP literal not answered at once: ok=%v err=%v", ok, err)
	}
	if d.Queries() != 0 {
		t.Fatalf("IP literal caused %d DNS queries", d.Queries())
	}
	if _, _, ok := r.Cached("host.test", 0, ""); ok {
		t.Fatal("uncached name answered")
	}
	if _, err := r.Lookup("host.test", 0, ""); err != nil {
		t.Fatal(err)
	}
	q := d.Queries()
	if s, err, ok := r.Cached("HOST.test.", 0, ""); !ok || err != nil || len(s) != 2 {
		t.Fatalf("cached answer: %v %v %v", s, err, ok)
	}
	if _, err := r.Lookup("nope.test", 0, ""); err == nil {
		t.Fatal("unknown name resolved")
	}
	q2 := d.Queries()
	if q2 == q {
		t.Fatal("unknown name did not query")
	}
	if _, err, ok := r.Cached("nope.test", 0, ""); !ok || err == nil {
		t.Fatalf("negative answer not cached: ok=%v err=%v", ok, err)
	}
	if d.Queries() != q2 {
		t.Fatal("cached lookups queried DNS")
	}
}

// Lookups in flight are bounded, the same name is looked up once for all who wait, and Async never blocks.
func TestInflightBound(t *testing.T) {
	d := zone(t)
	d.Delay("host.test", 500*time.Millisecond)
	r := newResolver(t, d, resolve.Config{MaxInflight: 1})
	done := make(chan error, 3)
	cb := func(_ []resolve.Server, err error) { done <- err }
	t0 := time.Now()
	for i := 0; i < 2; i++ {
		if _, ok, err := r.Async("host.test", 0, "", cb); ok || err != nil {
			t.Fatalf("Async %d: ok=%v err=%v", i, ok, err)
		}
	}
	if _, _, err := r.Async("srv.test", 0, "", cb); !errors.Is(err, resolve.ErrBusy) {
		t.Fatalf("a second name beyond max_inflight: %v, want ErrBusy", err)
	}
	if time.Since(t0) > 100*time.Millisecond {
		t.Fatalf("Async blocked for %v", time.Since(t0))
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("lookup never ended")
		}
	}
	if r.Lookups() != 1 {
		t.Errorf("%d lookups for one name, want 1", r.Lookups())
	}
}

// SRV targets of equal priority are ordered by weight: the heavy one comes first most of the time.
func TestSRVWeight(t *testing.T) {
	d := enginetest.StartDNS(t)
	d.Add(t, "_sip._udp.w.test. 60 IN SRV 10 90 5070 a.test.", "_sip._udp.w.test. 60 IN SRV 10 10 5080 a.test.", "a.test. 60 IN A 127.0.0.1")
	r := newResolver(t, d, resolve.Config{})
	heavy := 0
	for i := 0; i < 200; i++ {
		s, err := r.Lookup("w.test", 0, "udp")
		if err != nil || len(s) != 2 {
			t.Fatalf("%v %v", s, err)
		}
		if s[0].Addr.Port() == 5070 {
			heavy++
		}
	}
	if heavy < 140 || heavy == 200 {
		t.Errorf("weight 90 first %d/200 times, want about 180 and not always", heavy)
	}
}
