// Package pike detects request floods per source IP (Kamailio's pike module): an address that sends more
// than reqs_density_per_unit requests in a sampling unit is reported as flooding until its rate falls.
//
// Kamailio keeps a tree of address bytes in shared memory that grows with every new source. Here the
// counters live in a fixed-size, set-associative table allocated once: a flood of spoofed sources costs
// evictions, never memory. Each bucket holds a few addresses; a new address takes a free or expired slot,
// else the slot of the address with the fewest hits that is not blocked, so heavy senders, the ones pike is
// for, stay counted. Buckets are guarded by a fixed set of mutexes (held for one bucket scan), counters
// rotate lazily when an address is hit (no timer walks the table), and a check allocates nothing.
package pike

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "pike", New: func() engine.Instance {
		return &Pike{SamplingTimeUnit: 2, ReqsDensityPerUnit: 30, RemoveLatency: 120, MaxIPs: 65536}
	}})
}

// Pike holds the module parameters and the shared table.
type Pike struct {
	// SamplingTimeUnit is the length of a sampling unit in seconds (Kamailio sampling_time_unit, 2).
	SamplingTimeUnit int `toml:"sampling_time_unit"`
	// ReqsDensityPerUnit is how many requests an address may send per unit (Kamailio
	// reqs_density_per_unit, 30).
	ReqsDensityPerUnit int `toml:"reqs_density_per_unit"`
	// RemoveLatency is how long, in seconds, an address stays in the table after its last request
	// (Kamailio remove_latency, 120).
	RemoveLatency int `toml:"remove_latency"`
	// MaxIPs is how many addresses the table holds (siplua only: Kamailio's tree is unbounded). Rounded up
	// to a power of two; 32 bytes each.
	MaxIPs int `toml:"max_ips"`

	t       *table
	log     *slog.Logger
	blocked atomic.Uint64 // Kamailio's pike:blocked_ips counter
}

// Validate checks the parameters.
func (p *Pike) Validate() error {
	if p.SamplingTimeUnit < 1 || p.SamplingTimeUnit > 3600 {
		return fmt.Errorf("sampling_time_unit: expected 1..3600 seconds, got %d", p.SamplingTimeUnit)
	}
	if p.ReqsDensityPerUnit < 1 || p.ReqsDensityPerUnit > 65000 {
		return fmt.Errorf("reqs_density_per_unit: expected 1..65000, got %d", p.ReqsDensityPerUnit)
	}
	if p.RemoveLatency < 1 || p.RemoveLatency > 86400 {
		return fmt.Errorf("remove_latency: expected 1..86400 seconds, got %d", p.RemoveLatency)
	}
	if p.MaxIPs < bucketSize || p.MaxIPs > 1<<26 {
		return fmt.Errorf("max_ips: expected %d..%d, got %d", bucketSize, 1<<26, p.MaxIPs)
	}
	return nil
}

// Start allocates the table; the sampling units count from here.
func (p *Pike) Start(env *engine.Env) error {
	p.log = env.Log
	p.t = newTable(p.MaxIPs, time.Duration(p.SamplingTimeUnit)*time.Second, uint32(p.RemoveLatency),
		uint16(p.ReqsDensityPerUnit))
	return nil
}

// Exports: KSR.pike.*.
func (p *Pike) Exports() []engine.Export {
	return []engine.Export{
		{Name: "pike_check_req", Fn: p.checkReq},
		{Name: "pike_check_ip", Fn: p.checkIP},
	}
}

// Gauges: the number of times an address was blocked (Kamailio's pike:blocked_ips).
func (p *Pike) Gauges() []engine.Gauge {
	return []engine.Gauge{{Name: "pike_blocked_ips", Help: "times a source address started to be blocked by pike",
		Value: func() float64 { return float64(p.blocked.Load()) }}}
}

// checkReq is pike_check_req(): counts the request against its source address. 1 = under the density,
// -2 = the address has just crossed it (logged, counted in pike_blocked_ips), -1 = it is still flooding.
func (p *Pike) checkReq(m *engine.Msg) int {
	return p.hit(m.Src.Addr())
}

// checkIP is pike_check_ip(ip): the same for an address given as text (an IPv4 or IPv6 address); -1 when
// it is not one, as Kamailio (which parses only IPv4 there).
func (p *Pike) checkIP(_ *engine.Msg, ip string) int {
	a, err := netip.ParseAddr(trimBrackets(ip))
	if err != nil {
		return -1
	}
	return p.hit(a)
}

func trimBrackets(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

func (p *Pike) hit(a netip.Addr) int {
	if p.t == nil || !a.IsValid() {
		return 1 // as Kamailio on an internal error: never report a flood by mistake
	}
	switch p.t.hit(a.Unmap(), time.Now()) {
	case newlyRed:
		p.blocked.Add(1)
		if p.log != nil {
			p.log.Warn("PIKE - BLOCKing ip", "ip", a.Unmap().String())
		}
		return -2
	case red:
		return -1
	}
	return 1
}

// RPC offers pike.top.
func (p *Pike) RPC() []engine.Command {
	return []engine.Command{{
		Name: "pike.top",
		Help: "pike.top [HOT|WARM|ALL]: the addresses pike counts, with their hits in the previous and current sampling unit (default HOT)",
		Fn:   p.rpcTop,
	}}
}

// TopItem is one address in pike.top, with Kamailio's field names.
type TopItem struct {
	IP       string `json:"ip_addr"`
	HitsPrev int    `json:"leaf_hits_prev"`
	HitsCurr int    `json:"leaf_hits_curr"`
	Expires  int    `json:"expires"` // seconds until the address leaves the table
	Status   string `json:"status"`  // "HOT" (flooding), "WARM" (a quarter of the density this unit) or ""
}

// Top is pike.top's result, shaped as Kamailio's.
type Top struct {
	MaxHits int       `json:"max_hits"`
	List    []TopItem `json:"list"`
	Rows    int       `json:"number_of_rows"`
}

// rpcTop lists addresses by status: HOT (the default), WARM or ALL, matched as Kamailio does (the argument
// contains the word). Kamailio's WARM returns nothing (a missing case in its tree walk); here it lists the
// warm addresses.
func (p *Pike) rpcTop(args []string) (any, error) {
	opt := "HOT"
	if len(args) > 0 {
		opt = args[0]
	}
	var want status
	switch {
	case contains(opt, "ALL"):
		want = statusAll
	case contains(opt, "HOT"):
		want = statusHot
	case contains(opt, "WARM"):
		want = statusWarm
	default:
		return nil, fmt.Errorf("pike.top: bad argument %q. Select: ALL, HOT or WARM", opt)
	}
	top := Top{MaxHits: p.ReqsDensityPerUnit, List: []TopItem{}}
	if p.t != nil {
		p.t.each(time.Now(), func(a netip.Addr, prev, curr uint16, expires int, st status) {
			if want != statusAll && st != want {
				return
			}
			top.List = append(top.List, TopItem{IP: a.String(), HitsPrev: int(prev), HitsCurr: int(curr),
				Expires: expires, Status: statusNames[st]})
		})
	}
	top.Rows = len(top.List)
	return top, nil
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// The result of one hit.
const (
	ok = iota
	red
	newlyRed
)

type status uint8

const (
	statusOK status = iota
	statusWarm
	statusHot
	statusAll
)

var statusNames = [...]string{"", "WARM", "HOT", "ALL"}

const (
	bucketSize = 8    // addresses per bucket: one scan touches 256 bytes
	maxLocks   = 1024 // mutexes shared by the buckets
)

// entry is one address's counters: Kamailio's leaf_hits[PREV_POS, CURR_POS] and its red flag.
type entry struct {
	key  [16]byte
	last uint32 // second (since the table's start, plus one) of the last hit; 0 = free
	unit uint32 // the sampling unit curr counts
	prev uint16
	curr uint16
	red  bool
}

type table struct {
	buckets [][bucketSize]entry
	mask    uint64
	locks   []sync.Mutex
	lmask   uint64
	seed    maphash.Seed
	start   time.Time
	unitDur time.Duration
	latency uint32 // seconds
	max     uint16
}

func newTable(capacity int, unit time.Duration, latency uint32, max uint16) *table {
	nb := 1
	for nb*bucketSize < capacity {
		nb <<= 1
	}
	nl := min(nb, maxLocks)
	return &table{
		buckets: make([][bucketSize]entry, nb),
		mask:    uint64(nb - 1),
		locks:   make([]sync.Mutex, nl),
		lmask:   uint64(nl - 1),
		seed:    maphash.MakeSeed(), // per table: an attacker cannot aim many addresses at one bucket
		start:   time.Now(),
		unitDur: unit,
		latency: latency,
		max:     max,
	}
}

// hot is Kamailio's is_hot_leaf: the density reached in the previous unit, in the current one, or on their
// average.
func (t *table) hot(e *entry) bool {
	return e.prev >= t.max || e.curr >= t.max || (uint32(e.prev)+uint32(e.curr))>>1 >= uint32(t.max)
}

// rotate brings an entry's counters to unit u, as Kamailio's swap timer does once per unit (prev ← curr,
// curr ← 0), and unblocks an address that is no longer hot.
func (t *table) rotate(e *entry, u uint32) {
	for n := 0; e.unit < u && n < 2; n++ {
		e.prev, e.curr = e.curr, 0
		e.unit++
		if e.red && !t.hot(e) {
			e.red = false
		}
	}
	if e.unit < u { // two rotations leave zeros: later ones change nothing
		e.unit = u
	}
}

func (t *table) clock(now time.Time) (sec, unit uint32) {
	d := now.Sub(t.start)
	return uint32(d/time.Second) + 1, uint32(d / t.unitDur)
}

func (t *table) expired(e *entry, sec uint32) bool {
	return e.last == 0 || sec-e.last > t.latency
}

// hit counts one request from a (Kamailio's mark_node on an IP leaf).
func (t *table) hit(a netip.Addr, now time.Time) int {
	key := a.As16()
	sec, unit := t.clock(now)
	h := maphash.Comparable(t.seed, key)
	bi := h & t.mask
	mu := &t.locks[bi&t.lmask]
	mu.Lock()
	b := &t.buckets[bi]
	var e *entry
	victim := -1
	for i := range b {
		c := &b[i]
		if c.last != 0 && c.key == key {
			if t.expired(c, sec) { // Kamailio removed the node: start afresh
				*c = entry{key: key, unit: unit}
			}
			e = c
			break
		}
		if victim < 0 || t.better(c, &b[victim], sec) {
			victim = i
		}
	}
	if e == nil {
		e = &b[victim]
		*e = entry{key: key, unit: unit}
	}
	t.rotate(e, unit)
	e.last = sec
	if e.curr < 0xfffe {
		e.curr++
	}
	r := ok
	switch {
	case e.red:
		r = red
	case t.hot(e):
		e.red = true
		r = newlyRed
	}
	mu.Unlock()
	return r
}

// better reports whether slot c is a better one to reuse than slot v: a free or expired slot first, then
// an address that is not blocked, then the fewest hits, then the oldest.
func (t *table) better(c, v *entry, sec uint32) bool {
	ce, ve := t.expired(c, sec), t.expired(v, sec)
	if ce != ve {
		return ce
	}
	if ce {
		return false
	}
	if c.red != v.red {
		return !c.red
	}
	ch, vh := uint32(c.prev)+uint32(c.curr), uint32(v.prev)+uint32(v.curr)
	if ch != vh {
		return ch < vh
	}
	return c.last < v.last
}

// each calls fn for every address in the table (not expired), with its counters as of now. It locks one
// lock's buckets at a time, so routing goes on while it runs.
func (t *table) each(now time.Time, fn func(a netip.Addr, prev, curr uint16, expires int, st status)) {
	sec, unit := t.clock(now)
	type item struct {
		key        [16]byte
		prev, curr uint16
		expires    int
		st         status
	}
	var batch []item
	for li := range t.locks {
		batch = batch[:0]
		t.locks[li].Lock()
		for bi := uint64(li); bi < uint64(len(t.buckets)); bi += uint64(len(t.locks)) {
			for i := range t.buckets[bi] {
				e := &t.buckets[bi][i]
				if t.expired(e, sec) {
					continue
				}
				t.rotate(e, unit)
				st := statusOK
				switch {
				case t.hot(e):
					st = statusHot
				case e.curr >= t.max>>2: // Kamailio's is_warm_leaf, on the address's own hits
					st = statusWarm
				}
				batch = append(batch, item{e.key, e.prev, e.curr, int(t.latency) - int(sec-e.last), st})
			}
		}
		t.locks[li].Unlock()
		for _, it := range batch {
			fn(netip.AddrFrom16(it.key).Unmap(), it.prev, it.curr, it.expires, it.st)
		}
	}
}
