package dispatcher

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// Destination state bits, as Kamailio's dispatch.h.
const (
	stInactive = 1  // I
	stTrying   = 2  // T
	stDisabled = 4  // D
	stProbing  = 8  // P
	stNoDNS    = 16 // no DNS resolution of the host (load time)
	stNoPing   = 32
	stAll      = 63
)

// skip reports whether a destination in state st is not used for routing (Kamailio's ds_skip_dst).
func skip(st uint32) bool { return st&(stInactive|stDisabled) != 0 }

// Dst is one line of the list. Defined in TOML as [[modules.dispatcher.dst]].
type Dst struct {
	Set      int    `toml:"set"`
	URI      string `toml:"uri"`
	Flags    int    `toml:"flags"`
	Priority int    `toml:"priority"`
	Attrs    string `toml:"attrs"`
}

// dest is a loaded destination. Its state is shared by the routes, the pinger and ctl; everything else is
// read-only once the list is published.
type dest struct {
	set      int
	uri      string
	priority int
	attrs    string // as written, without a trailing ';'
	duid     string
	weight   int
	rweight  int
	pingFrom string
	socket   string

	// matching (ds_is_from_list): the address the URI names, as Kamailio keeps port_no/proto of the URI
	// (0 / none when the URI does not say).
	ip      netip.Addr // invalid when the host did not resolve
	uriPort int
	uriProt engine.Proto
	// where pings go
	dst   netip.AddrPort
	proto engine.Proto

	avp engine.Value // its failover record: "set\x00uri\x00attrs", built once

	state atomic.Uint32
	count int // consecutive ping failures / successes (Kamailio's message_count); set.mu

	lat latency // ping latency (ds_ping_latency_stats)
}

// dsSet is one destination set.
type dsSet struct {
	id    int
	dests []*dest // highest priority first, as Kamailio orders them

	last   atomic.Uint32 // round robin
	wlast  atomic.Uint32
	rwlast atomic.Uint32
	wlist  [100]uint8
	rwlist atomic.Pointer[[100]uint8]

	mu sync.Mutex // state changes (counters, rwlist rebuild)
}

// list is one loaded generation of the destination sets, published with an atomic swap.
type list struct {
	sets   map[int]*dsSet
	ids    []int // ascending
	source string
	loaded time.Time
}

func (l *list) count() int {
	n := 0
	for _, s := range l.sets {
		n += len(s.dests)
	}
	return n
}

// parseListFile reads Kamailio's dispatcher.list: "setid uri [flags [priority [attrs]]]", '#' comments.
func parseListFile(path string) ([]Dst, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("list_file: %w", err)
	}
	defer f.Close()
	var out []Dst
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if len(fs) < 2 || len(fs) > 5 {
			return nil, fmt.Errorf("list_file %s:%d: expected \"setid uri [flags [priority [attrs]]]\", got %q", path, n, sc.Text())
		}
		var d Dst
		if d.Set, err = strconv.Atoi(fs[0]); err != nil || d.Set < 0 {
			return nil, fmt.Errorf("list_file %s:%d: set id: expected a number ≥ 0, got %q", path, n, fs[0])
		}
		d.URI = fs[1]
		if len(fs) > 2 {
			if d.Flags, err = strconv.Atoi(fs[2]); err != nil || d.Flags < 0 {
				return nil, fmt.Errorf("list_file %s:%d: flags: expected a number, got %q", path, n, fs[2])
			}
		}
		if len(fs) > 3 {
			if d.Priority, err = strconv.Atoi(fs[3]); err != nil {
				return nil, fmt.Errorf("list_file %s:%d: priority: expected a number, got %q", path, n, fs[3])
			}
		}
		if len(fs) > 4 {
			d.Attrs = fs[4]
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list_file %s: %w", path, err)
	}
	return out, nil
}

// checkDst validates one entry (a list line or an inline table) without resolving anything.
func checkDst(d Dst) error {
	if d.Set < 0 {
		return fmt.Errorf("set: expected a number ≥ 0, got %d", d.Set)
	}
	u, ok := rawsip.ParseURI(d.URI)
	if !ok || (!strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips")) {
		return fmt.Errorf("uri: expected a sip: or sips: URI, got %q", d.URI)
	}
	if d.Flags < 0 || d.Flags > stAll {
		return fmt.Errorf("flags: expected 0..63 (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS), got %d", d.Flags)
	}
	return nil
}

// resolver looks a destination host up when the list is loaded (never on a route worker).
type resolver func(ctx context.Context, host string) (netip.Addr, error)

func netResolve(ctx context.Context, host string) (netip.Addr, error) {
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("no address for %s", host)
	}
	return as[0].Unmap(), nil
}

// buildList turns entries into sets. prev (may be nil) gives the state of destinations that stay, so a
// reload does not bring a destination known to be down back into rotation.
func buildList(entries []Dst, source string, prev *list, resolve resolver, warn func(string, ...any)) (*list, error) {
	l := &list{sets: map[int]*dsSet{}, source: source, loaded: time.Now()}
	type item struct {
		d   *dest
		pos int
	}
	bySet := map[int][]item{}
	for i, e := range entries {
		if err := checkDst(e); err != nil {
			return nil, fmt.Errorf("destination %d (%s): %w", i+1, e.URI, err)
		}
		d, err := newDest(e, resolve, warn)
		if err != nil {
			return nil, fmt.Errorf("destination %d (%s): %w", i+1, e.URI, err)
		}
		bySet[e.Set] = append(bySet[e.Set], item{d, i})
	}
	for id, items := range bySet {
		// Kamailio keeps a set highest priority first; equal priorities end up in reverse file order
		// (add_dest2list inserts after the equals, reindex_dests copies backwards). Hashes pick by
		// index, so the same order gives the same choice as Kamailio for the same message.
		slices.SortStableFunc(items, func(a, b item) int {
			if a.d.priority != b.d.priority {
				return b.d.priority - a.d.priority
			}
			return b.pos - a.pos
		})
		s := &dsSet{id: id}
		for _, it := range items {
			s.dests = append(s.dests, it.d)
		}
		if prev != nil {
			if ps := prev.sets[id]; ps != nil {
				for _, d := range s.dests {
					for _, pd := range ps.dests {
						if pd.uri == d.uri {
							d.state.Store(pd.state.Load())
							break
						}
					}
				}
			}
		}
		s.initWeights()
		s.initRelWeights()
		l.sets[id] = s
		l.ids = append(l.ids, id)
	}
	slices.Sort(l.ids)
	return l, nil
}

func newDest(e Dst, resolve resolver, warn func(string, ...any)) (*dest, error) {
	d := &dest{set: e.Set, uri: e.URI, priority: e.Priority, attrs: strings.TrimSuffix(e.Attrs, ";")}
	d.state.Store(uint32(e.Flags))
	for _, kv := range strings.Split(d.attrs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch strings.ToLower(k) {
		case "":
		case "duid":
			d.duid = v
		case "weight":
			w, _ := strconv.Atoi(v)
			if w < 1 || w > 100 {
				warn("weight not in 1..100: ignored", "uri", e.URI, "weight", v)
				w = 0
			}
			d.weight = w
		case "rweight":
			w, _ := strconv.Atoi(v)
			if w < 1 || w > 100 {
				warn("rweight not in 1..100: ignored", "uri", e.URI, "rweight", v)
				w = 0
			}
			d.rweight = w
		case "ping_from":
			d.pingFrom = v
		case "socket":
			d.socket = v
		}
	}
	u, _ := rawsip.ParseURI(e.URI)
	sips := strings.EqualFold(u.Scheme, "sips")
	// siplua sends over UDP and TCP: a sips: or TLS/WS destination is routed to (the relay decides) but
	// not pinged (proto none).
	d.proto = engine.UDP
	if sips {
		d.proto = engine.ProtoNone
	}
	if tr, _, _, ok := rawsip.Param(u.Params, "transport"); ok {
		p, known := engine.ParseProto(tr)
		d.uriProt = p
		if !known || sips {
			d.proto = engine.ProtoNone
		} else {
			d.proto = p
		}
	}
	port := 5060
	if sips || strings.EqualFold(u.Params, ";transport=tls") {
		port = 5061
	}
	if u.Port != "" {
		p, err := strconv.Atoi(u.Port)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("uri: bad port %q", u.Port)
		}
		port, d.uriPort = p, p
	}
	host := strings.Trim(u.Host, "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		d.ip = a.Unmap()
	} else if e.Flags&stNoDNS == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a, err := resolve(ctx, host)
		cancel()
		if err != nil {
			warn("destination host does not resolve: not matched by ds_is_from_list, not pinged", "uri", e.URI, "err", err)
		} else {
			d.ip = a
		}
	}
	if d.ip.IsValid() {
		d.dst = netip.AddrPortFrom(d.ip, uint16(port))
	}
	d.avp = engine.StrVal(strconv.Itoa(e.Set) + "\x00" + e.URI + "\x00" + d.attrs)
	return d, nil
}

// initWeights is Kamailio's dp_init_weights: 100 slots filled by weight (percent), the rest by the last
// destination, shuffled; only when the first destination has a weight.
func (s *dsSet) initWeights() {
	if len(s.dests) == 0 || s.dests[0].weight == 0 {
		return
	}
	t := 0
fill:
	for j, d := range s.dests {
		for k := 0; k < d.weight; k++ {
			if t >= 100 {
				break fill
			}
			s.wlist[t] = uint8(j)
			t++
		}
	}
	for ; t < 100; t++ {
		s.wlist[t] = uint8(len(s.dests) - 1)
	}
	shuffle(&s.wlist)
}

// initRelWeights is Kamailio's dp_init_relative_weights: the active destinations share the 100 slots in
// proportion to rweight. It runs again when a destination with an rweight changes state; s.mu or
// exclusive access is held.
func (s *dsSet) initRelWeights() {
	if len(s.dests) < 2 {
		return
	}
	sum := 0
	for _, d := range s.dests {
		if !skip(d.state.Load()) {
			sum += d.rweight
		}
	}
	if sum == 0 {
		return
	}
	var rw [100]uint8
	t := 0
	for j, d := range s.dests {
		if skip(d.state.Load()) {
			continue
		}
		for k := 0; k < d.rweight*100/sum && t < 100; k++ {
			rw[t] = uint8(j)
			t++
		}
	}
	lastIdx := uint8(len(s.dests) - 1)
	if t > 0 {
		lastIdx = rw[t-1]
	}
	for ; t < 100; t++ {
		rw[t] = lastIdx
	}
	shuffle(&rw)
	s.rwlist.Store(&rw)
}

func shuffle(a *[100]uint8) {
	for j := 0; j < 100; j++ {
		k := j + rand.IntN(100-j)
		a[j], a[k] = a[k], a[j]
	}
}

// flagString is the FLAGS column of dispatcher.list: A/I/D/T then P/X, as Kamailio prints it.
func flagString(st uint32) string {
	c := []byte{'A', 'X'}
	switch {
	case st&stInactive != 0:
		c[0] = 'I'
	case st&stDisabled != 0:
		c[0] = 'D'
	case st&stTrying != 0:
		c[0] = 'T'
	}
	if st&stProbing != 0 {
		c[1] = 'P'
	}
	return string(c)
}

// parseFlags is Kamailio's ds_parse_flags: letters a, i, d, t, p (any case); -1 on anything else.
func parseFlags(s string) int {
	f := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'a', 'A':
			f &^= stAll
		case 'i', 'I':
			f |= stInactive
		case 'd', 'D':
			f |= stDisabled
		case 't', 'T':
			f |= stTrying
		case 'p', 'P':
			f |= stProbing
		default:
			return -1
		}
	}
	return f
}
