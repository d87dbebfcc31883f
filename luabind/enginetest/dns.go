package enginetest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSServer is a real DNS server on 127.0.0.1 (UDP) answering from records the test adds, optionally late,
// for [core] dns_servers = [s.Addr].
type DNSServer struct {
	Addr    string
	srv     *dns.Server
	mu      sync.Mutex
	records map[string][]dns.RR // "name.|TYPE"
	names   map[string]bool
	delay   map[string]time.Duration
	queries atomic.Int64
}

// StartDNS starts a DNS server for the test's lifetime.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &DNSServer{Addr: pc.LocalAddr().String(), records: map[string][]dns.RR{}, names: map[string]bool{}, delay: map[string]time.Duration{}}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.srv.Shutdown() })
	return s
}

// Add adds records in zone-file form: "sip.test. 60 IN A 127.0.0.1".
func (s *DNSServer) Add(t testing.TB, zone ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, z := range zone {
		rr, err := dns.NewRR(z)
		if err != nil {
			t.Fatalf("record %q: %v", z, err)
		}
		h := rr.Header()
		k := strings.ToLower(h.Name) + "|" + dns.TypeToString[h.Rrtype]
		s.records[k] = append(s.records[k], rr)
		s.names[strings.ToLower(h.Name)] = true
	}
}

// Delay makes every answer about name (any type) wait d.
func (s *DNSServer) Delay(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay[strings.ToLower(dns.Fqdn(name))] = d
}

// Queries counts the questions received.
func (s *DNSServer) Queries() int64 { return s.queries.Load() }

func (s *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	d := s.delay[name]
	m.Answer = append(m.Answer, s.records[name+"|"+dns.TypeToString[q.Qtype]]...)
	known := s.names[name]
	s.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	if d > 0 {
		time.Sleep(d) // the server runs each question on its own goroutine
	}
	_ = w.WriteMsg(m)
}
