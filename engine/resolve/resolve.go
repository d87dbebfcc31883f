// Package resolve finds the servers of a SIP URI per RFC 3263 (NAPTR, then SRV with priority and weight,
// then A/AAAA), with a TTL cache, negative caching and a bounded number of lookups in flight, so that a
// route worker never waits on DNS: a cached answer is returned at once, anything else is looked up on a
// goroutine of the resolver and handed to a callback.
//
// It queries the configured servers itself (github.com/miekg/dns) because the standard resolver gives
// neither NAPTR records nor TTLs. IP literals never reach DNS; /etc/hosts is read once for names.
package resolve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server is one place a request can go, in the order RFC 3263 says to try them.
type Server struct {
	Transport string // "udp", "tcp" or "tls"
	Addr      netip.AddrPort
}

// Config sets up a Resolver; zero values take the defaults.
type Config struct {
	Servers     []string      // "ip:port" of DNS servers; empty: the nameservers of /etc/resolv.conf
	Timeout     time.Duration // per query and server (default 2 s)
	MaxInflight int           // distinct lookups running at once (default 64)
	MaxWaiting  int           // callbacks waiting for lookups (default 4096)
	CacheSize   int           // cached names (default 4096)
	NegTTL      time.Duration // how long a failed or empty lookup is remembered (default 60 s, Kamailio's dns_neg_cache_ttl)
	MaxTTL      time.Duration // upper bound of a cached answer's life (default 1 h)
	HostsFile   string        // default /etc/hosts; "-" = none
	Log         *slog.Logger
}

// failTTL is how long a lookup that failed (timeout, SERVFAIL) is remembered: long enough that a dead DNS
// server is not asked for every request, short enough to recover soon.
const failTTL = 5 * time.Second

// Errors a lookup can end with.
var (
	ErrBusy     = errors.New("too many DNS lookups in flight")
	ErrNotFound = errors.New("no such SIP server")
)

type key struct {
	host      string
	port      uint16
	transport string
}

type entry struct {
	groups [][]srvRec // try in order; within a group, by SRV weight
	err    error
	exp    time.Time
}

type srvRec struct {
	s      Server
	weight uint16
}

type call struct {
	waiters []func([]Server, error)
}

// Resolver is safe for concurrent use.
type Resolver struct {
	cfg     Config
	servers []string
	hosts   map[string][]netip.Addr
	log     *slog.Logger

	mu       sync.Mutex
	cache    map[key]*entry
	inflight map[key]*call
	running  int
	waiting  atomic.Int64

	lookups, hits atomic.Uint64 // for tests and stats
}

// New builds a resolver; it reads /etc/resolv.conf when no servers are given.
func New(cfg Config) (*Resolver, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 64
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = 4096
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 4096
	}
	if cfg.NegTTL <= 0 {
		cfg.NegTTL = 60 * time.Second
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &Resolver{cfg: cfg, log: cfg.Log, cache: map[key]*entry{}, inflight: map[key]*call{}}
	r.servers = slices.Clone(cfg.Servers)
	if len(r.servers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil { // names then fail to resolve; addresses still work
			r.log.Warn("no DNS server: dns_servers is empty and /etc/resolv.conf is unreadable", "err", err)
		} else {
			for _, s := range cc.Servers {
				r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
			}
		}
	}
	hf := cfg.HostsFile
	if hf == "" {
		hf = "/etc/hosts"
	}
	if hf != "-" {
		r.hosts = readHosts(hf)
	}
	return r, nil
}

// Servers are the DNS servers queried.
func (r *Resolver) Servers() []string { return r.servers }

// Lookups is how many lookups went to DNS (cache misses).
func (r *Resolver) Lookups() uint64 { return r.lookups.Load() }

// Cached returns the servers of host (with port 0 when the URI has none, and transport "" when it names
// none) when the answer is known without waiting: an IP literal, an /etc/hosts name or a cached lookup.
// ok is false when a lookup is needed.
func (r *Resolver) Cached(host string, port int, transport string) (servers []Server, err error, ok bool) {
	k := key{strings.ToLower(strings.TrimSuffix(host, ".")), uint16(port), transport}
	if s, ok := r.static(k); ok {
		return s, nil, true
	}
	if k.host == "invalid" || strings.HasSuffix(k.host, ".invalid") { // RFC 6761 §6.4: never exists, never asked
		return nil, fmt.Errorf("resolve %s: %w", host, ErrNotFound), true
	}
	r.mu.Lock()
	e := r.cache[k]
	r.mu.Unlock()
	if e == nil || time.Now().After(e.exp) {
		return nil, nil, false
	}
	r.hits.Add(1)
	if e.err != nil {
		return nil, e.err, true
	}
	return order(e.groups), nil, true
}

// static answers IP literals and /etc/hosts names.
func (r *Resolver) static(k key) ([]Server, bool) {
	h := strings.Trim(k.host, "[]")
	ip, err := netip.ParseAddr(h)
	var ips []netip.Addr
	if err == nil {
		ips = []netip.Addr{ip.Unmap()}
	} else if r.hosts[h] != nil {
		ips = r.hosts[h]
	} else {
		return nil, false
	}
	t := k.transport
	if t == "" {
		t = "udp"
	}
	port := k.port
	if port == 0 {
		port = defaultPort(t)
	}
	out := make([]Server, len(ips))
	for i, a := range ips {
		out[i] = Server{Transport: t, Addr: netip.AddrPortFrom(a, port)}
	}
	return out, true
}

// Async looks host up on a resolver goroutine and calls done there with the servers in the order to try.
// A cached answer is given synchronously instead (ok true). It never blocks: when MaxInflight lookups run
// and this one is not among them, or MaxWaiting callbacks wait, it returns ErrBusy.
func (r *Resolver) Async(host string, port int, transport string, done func([]Server, error)) (servers []Server, ok bool, err error) {
	if s, err, ok := r.Cached(host, port, transport); ok {
		return s, true, err
	}
	if r.waiting.Add(1) > int64(r.cfg.MaxWaiting) {
		r.waiting.Add(-1)
		return nil, false, ErrBusy
	}
	k := key{strings.ToLower(strings.TrimSuffix(host, ".")), uint16(port), transport}
	r.mu.Lock()
	if c := r.inflight[k]; c != nil { // the same name is being looked up: wait for that answer
		c.waiters = append(c.waiters, done)
		r.mu.Unlock()
		return nil, false, nil
	}
	if r.running >= r.cfg.MaxInflight {
		r.mu.Unlock()
		r.waiting.Add(-1)
		return nil, false, ErrBusy
	}
	r.running++
	c := &call{waiters: []func([]Server, error){done}}
	r.inflight[k] = c
	r.mu.Unlock()
	go r.run(k, c)
	return nil, false, nil
}

// Lookup resolves and waits (for tools and tests; routes use Async).
func (r *Resolver) Lookup(host string, port int, transport string) ([]Server, error) {
	if s, err, ok := r.Cached(host, port, transport); ok {
		return s, err
	}
	ch := make(chan struct{})
	var out []Server
	var oerr error
	s, ok, err := r.Async(host, port, transport, func(s []Server, err error) { out, oerr = s, err; close(ch) })
	if ok || err != nil {
		return s, err
	}
	<-ch
	return out, oerr
}

func (r *Resolver) run(k key, c *call) {
	r.lookups.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 4*r.cfg.Timeout)
	groups, ttl, err := r.resolve(ctx, k)
	cancel()
	if err == nil && len(groups) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		ttl = r.cfg.NegTTL
		if !errors.Is(err, ErrNotFound) {
			// a timeout or a server failure may pass soon: ask again after a few seconds, not a minute
			ttl = min(ttl, failTTL)
		}
		err = fmt.Errorf("resolve %s: %w", k.host, err)
	}
	ttl = min(ttl, r.cfg.MaxTTL)
	if ttl < time.Second {
		ttl = time.Second // a zero TTL would send every request to DNS
	}
	r.mu.Lock()
	r.store(k, &entry{groups: groups, err: err, exp: time.Now().Add(ttl)})
	delete(r.inflight, k)
	r.running--
	waiters := c.waiters
	r.mu.Unlock()
	r.waiting.Add(-int64(len(waiters)))
	for _, w := range waiters {
		if err != nil {
			w(nil, err)
		} else {
			w(order(groups), nil)
		}
	}
}

// store caches an entry, making room by dropping expired entries, then arbitrary ones. Called with r.mu.
func (r *Resolver) store(k key, e *entry) {
	if len(r.cache) >= r.cfg.CacheSize {
		now := time.Now()
		for ck, ce := range r.cache {
			if now.After(ce.exp) {
				delete(r.cache, ck)
			}
		}
		for ck := range r.cache {
			if len(r.cache) < r.cfg.CacheSize {
				break
			}
			delete(r.cache, ck)
		}
	}
	r.cache[k] = e
}

// order flattens the groups, ordering each group by SRV weight (RFC 2782: a random pick weighted by weight,
// repeated; weight 0 entries get a small chance).
func order(groups [][]srvRec) []Server {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	out := make([]Server, 0, n)
	for _, g := range groups {
		if len(g) == 1 {
			out = append(out, g[0].s)
			continue
		}
		rest := slices.Clone(g)
		for len(rest) > 0 {
			sum := 0
			for _, s := range rest {
				sum += int(s.weight) + 1
			}
			pick := rand.IntN(sum)
			i := 0
			for ; i < len(rest)-1; i++ {
				pick -= int(rest[i].weight) + 1
				if pick < 0 {
					break
				}
			}
			out = append(out, rest[i].s)
			rest = slices.Delete(rest, i, i+1)
		}
	}
	return out
}

// transports this resolver's users can reach, in the client's preference (RFC 3263 §4.1).
var naptrServices = map[string]string{"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}

// srvName is the SRV name of host for a transport (RFC 3263 §4.1): TLS is _sips._tcp.
func srvName(transport, host string) string {
	if transport == "tls" {
		return "_sips._tcp." + host
	}
	return "_sip._" + transport + "." + host
}

// defaultPort is the port of a URI without one: 5061 for TLS (RFC 3261 §19.1.2), else 5060.
func defaultPort(transport string) uint16 {
	if transport == "tls" {
		return 5061
	}
	return 5060
}

// resolve runs RFC 3263 §4 for one key and returns the groups of servers and the smallest TTL seen.
func (r *Resolver) resolve(ctx context.Context, k key) ([][]srvRec, time.Duration, error) {
	ttl := r.cfg.MaxTTL
	seen := func(t uint32) { ttl = min(ttl, time.Duration(t)*time.Second) }
	host := dns.Fqdn(k.host)
	hostOnly := func(transport string, port uint16) ([][]srvRec, time.Duration, error) {
		if transport == "" {
			transport = "udp"
		}
		ips, t, err := r.addrs(ctx, host)
		if err != nil {
			return nil, 0, err
		}
		seen(t)
		groups := make([][]srvRec, 0, len(ips))
		for _, ip := range ips { // in the order of the answer: IPv4 first
			groups = append(groups, []srvRec{{s: Server{Transport: transport, Addr: netip.AddrPortFrom(ip, port)}}})
		}
		return groups, ttl, nil
	}
	if k.port != 0 { // §4.2: a port means no SRV
		return hostOnly(k.transport, k.port)
	}
	transports := []string{k.transport}
	var names []string
	if k.transport != "" {
		names = []string{srvName(k.transport, host)}
	} else {
		// §4.1: NAPTR first; SIP+D2U / SIP+D2T records in order and preference lead to SRV names
		rrs, t, err := r.query(ctx, host, dns.TypeNAPTR)
		if err != nil {
			return nil, 0, err
		}
		var naptrs []*dns.NAPTR
		for _, rr := range rrs {
			if n, ok := rr.(*dns.NAPTR); ok && strings.EqualFold(n.Flags, "s") && naptrServices[strings.ToUpper(n.Service)] != "" {
				naptrs = append(naptrs, n)
			}
		}
		if len(naptrs) > 0 {
			seen(t)
			slices.SortStableFunc(naptrs, func(a, b *dns.NAPTR) int {
				if a.Order != b.Order {
					return int(a.Order) - int(b.Order)
				}
				return int(a.Preference) - int(b.Preference)
			})
			transports = transports[:0]
			for _, n := range naptrs {
				names = append(names, n.Replacement)
				transports = append(transports, naptrServices[strings.ToUpper(n.Service)])
			}
		} else {
			names = []string{"_sip._udp." + host, "_sip._tcp." + host}
			transports = []string{"udp", "tcp"}
		}
	}
	var groups [][]srvRec
	for i, name := range names {
		rrs, t, err := r.query(ctx, name, dns.TypeSRV)
		if err != nil {
			return nil, 0, err
		}
		var srvs []*dns.SRV
		for _, rr := range rrs {
			if s, ok := rr.(*dns.SRV); ok && s.Target != "." {
				srvs = append(srvs, s)
			}
		}
		if len(srvs) == 0 {
			continue
		}
		seen(t)
		slices.SortStableFunc(srvs, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) })
		var g []srvRec
		for j, s := range srvs {
			if j > 0 && s.Priority != srvs[j-1].Priority && len(g) > 0 {
				groups = append(groups, g)
				g = nil
			}
			ips, t, err := r.addrs(ctx, s.Target)
			if err != nil {
				continue // a target that does not resolve is skipped, the others still serve
			}
			seen(t)
			for _, ip := range ips {
				g = append(g, srvRec{s: Server{Transport: transports[i], Addr: netip.AddrPortFrom(ip, s.Port)}, weight: s.Weight})
			}
		}
		if len(g) > 0 {
			groups = append(groups, g)
		}
	}
	if len(groups) > 0 {
		return groups, ttl, nil
	}
	// §4.2: no SRV records: the host's addresses, port 5060 (5061 for TLS)
	return hostOnly(k.transport, defaultPort(k.transport))
}

// addrs returns the IPv4 then IPv6 addresses of a name and the smallest TTL.
func (r *Resolver) addrs(ctx context.Context, name string) ([]netip.Addr, uint32, error) {
	if ips := r.hosts[strings.TrimSuffix(strings.ToLower(name), ".")]; ips != nil {
		return ips, uint32(r.cfg.MaxTTL / time.Second), nil
	}
	var out []netip.Addr
	ttl := uint32(1 << 31)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, t, err := r.query(ctx, name, qt)
		if err != nil {
			if len(out) > 0 {
				break
			}
			return nil, 0, err
		}
		for _, rr := range rrs {
			var ip netip.Addr
			switch a := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(a.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(a.AAAA)
			}
			if ip.IsValid() {
				out = append(out, ip.Unmap())
				ttl = min(ttl, t)
			}
		}
	}
	return out, ttl, nil
}

// query asks the servers in turn for name/qtype and returns the answer records of that type (CNAMEs in
// the answer are followed as the server gave them), with their smallest TTL; an empty answer (NXDOMAIN or
// no data) is not an error.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	var lastErr error
	for _, srv := range r.servers {
		c := &dns.Client{Net: "udp", Timeout: r.cfg.Timeout}
		in, _, err := c.ExchangeContext(ctx, m, srv)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			lastErr = err
			continue
		}
		if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
			lastErr = fmt.Errorf("%s %s: %s from %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode], srv)
			continue
		}
		var out []dns.RR
		ttl := uint32(1 << 31)
		for _, rr := range in.Answer {
			if rr.Header().Rrtype == qtype {
				out = append(out, rr)
				ttl = min(ttl, rr.Header().Ttl)
			}
		}
		if len(out) == 0 {
			ttl = uint32(r.cfg.NegTTL / time.Second)
			for _, rr := range in.Ns { // RFC 2308: negative answers live as long as the SOA says
				if soa, ok := rr.(*dns.SOA); ok {
					ttl = min(soa.Minttl, soa.Hdr.Ttl)
				}
			}
		}
		return out, ttl, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no DNS server configured")
	}
	return nil, 0, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, lastErr)
}

// readHosts reads an /etc/hosts file: lower-case names to addresses.
func readHosts(path string) map[string][]netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string][]netip.Addr{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			n := strings.ToLower(name)
			out[n] = append(out[n], ip.Unmap())
		}
	}
	return out
}
