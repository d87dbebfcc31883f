// Package permissions is the address part of Kamailio's permissions module: groups of addresses and
// subnets (inline tables and/or Kamailio's address file), matched against a request's source or a given
// address and port; reloadable without restart.
package permissions

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplua/siplua/engine"
)

const modName = "permissions"

func init() {
	engine.Register(engine.Module{Name: modName, New: func() engine.Instance { return New() }})
}

// New returns the module with its defaults.
func New() *Permissions { return &Permissions{log: slog.Default()} }

// Address is one [[modules.permissions.address]] table.
type Address struct {
	Group int    `toml:"group"`
	CIDR  string `toml:"cidr"`  // "10.0.0.0/8", "2001:db8::/32" or a single address
	Port  int    `toml:"port"`  // 0 = any
	Proto string `toml:"proto"` // "any" (default), udp, tcp, tls, ws, wss, sctp
	Tag   string `toml:"tag"`
}

// Permissions holds the parameters and the current address table.
type Permissions struct {
	// AddressFile is Kamailio's address file ("grp ip[/len] [mask [port [tag]]]", '#' comments) or a CSV
	// file (grp,ip_addr,mask,port,tag[,proto]), relative to the configuration file.
	AddressFile string `toml:"address_file" reload:"live"`
	// Address are entries written in the configuration, added to the file's.
	Address []Address `toml:"address" reload:"live"`
	// PeerTagAVP receives the tag of the entry that matched ("$avp(peer_tag)"), as Kamailio's peer_tag_avp.
	PeerTagAVP string `toml:"peer_tag_avp"`

	tagPV string // AVP name of PeerTagAVP
	e     *engine.Engine
	log   *slog.Logger
	dir   string
	table atomic.Pointer[table]
	src   atomic.Pointer[source]
	mu    sync.Mutex
}

type source struct {
	file   string
	inline []Address
}

// Validate checks the parameters and the inline entries.
func (p *Permissions) Validate() error {
	for i, a := range p.Address {
		if _, err := newEntry(a); err != nil {
			return fmt.Errorf("address[%d]: %w", i, err)
		}
	}
	if p.PeerTagAVP != "" {
		s := p.PeerTagAVP
		if !strings.HasPrefix(s, "$avp(") || !strings.HasSuffix(s, ")") || len(s) <= 6 {
			return fmt.Errorf("peer_tag_avp: expected an AVP like \"$avp(peer_tag)\", got %q", s)
		}
		p.tagPV = s[5 : len(s)-1]
	}
	return nil
}

// Start loads the table.
func (p *Permissions) Start(env *engine.Env) error {
	p.e, p.log = env.Engine, env.Log
	if cfg := env.Engine.Config(); cfg != nil {
		p.dir = cfg.Dir
	}
	p.src.Store(&source{file: p.AddressFile, inline: p.Address})
	_, err := p.load()
	return err
}

// Reload takes the entries of a reloaded configuration and re-reads address_file.
func (p *Permissions) Reload(next engine.Instance) error {
	n, ok := next.(*Permissions)
	if !ok {
		return fmt.Errorf("permissions: reload with a %T", next)
	}
	prev := p.src.Swap(&source{file: n.AddressFile, inline: n.Address})
	if _, err := p.load(); err != nil {
		p.src.Store(prev)
		return err
	}
	return nil
}

// ReloadsFiles marks Permissions as an engine.FileReloader.
func (p *Permissions) ReloadsFiles() {}

func (p *Permissions) load() (*table, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	src := p.src.Load()
	var entries []*entry
	name := "config"
	if src.file != "" {
		path := src.file
		if !filepath.IsAbs(path) && p.dir != "" {
			path = filepath.Join(p.dir, path)
		}
		fe, err := readAddressFile(path)
		if err != nil {
			return nil, err
		}
		entries, name = fe, path
	}
	for i, a := range src.inline {
		e, err := newEntry(a)
		if err != nil {
			return nil, fmt.Errorf("address[%d]: %w", i, err)
		}
		entries = append(entries, e)
	}
	t := buildTable(entries, name)
	p.table.Store(t)
	p.log.Info("address table loaded", "source", name, "entries", len(entries))
	return t, nil
}

// entry is one address or subnet of a group.
type entry struct {
	grp    int
	pfx    netip.Prefix // a single address is a /32 or /128
	domain string       // a host name (the address file may hold names), matched by allow_address only
	port   int
	proto  string // "" = any
	tag    string
	idx    int // position among the subnets (group order): the first match wins
}

var protos = map[string]string{"": "", "any": "", "udp": "udp", "tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "wss", "sctp": "sctp"}

func newEntry(a Address) (*entry, error) {
	e := &entry{grp: a.Group, port: a.Port, tag: a.Tag}
	if a.Group < 0 {
		return nil, fmt.Errorf("group: expected a number ≥ 0, got %d", a.Group)
	}
	if a.Port < 0 || a.Port > 65535 {
		return nil, fmt.Errorf("port: expected 0 (any) or 1..65535, got %d", a.Port)
	}
	pr, ok := protos[strings.ToLower(a.Proto)]
	if !ok {
		return nil, fmt.Errorf("proto: expected any, udp, tcp, tls, ws, wss or sctp, got %q", a.Proto)
	}
	e.proto = pr
	pfx, err := parseCIDR(a.CIDR)
	if err != nil {
		return nil, fmt.Errorf("cidr: %w", err)
	}
	e.pfx = pfx
	return e, nil
}

// parseCIDR takes "10.0.0.0/8", "2001:db8::/32" or a single address; host bits are cleared, as
// Kamailio compares the masked address.
func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("expected an address or CIDR like 10.0.0.0/8, got %q", s)
		}
		a := pfx.Addr()
		bits := pfx.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
			if bits < 0 {
				return netip.Prefix{}, fmt.Errorf("expected an address or CIDR like 10.0.0.0/8, got %q", s)
			}
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("expected an address or CIDR like 10.0.0.0/8, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// table is one loaded generation, published by an atomic swap: single addresses in a map (Kamailio's
// address hash table), subnets ordered by group (its subnet table), host names apart (its domain table).
type table struct {
	exact   map[netip.Addr][]*entry
	subnets []*entry
	byLen   []lenIndex // subnets by prefix length: one map lookup per distinct length, not a scan
	domains []*entry
	all     []*entry
	source  string
}

func buildTable(entries []*entry, source string) *table {
	t := &table{exact: map[netip.Addr][]*entry{}, all: entries, source: source}
	for _, e := range entries {
		switch {
		case e.domain != "":
			t.domains = append(t.domains, e)
		case e.pfx.IsSingleIP():
			t.exact[e.pfx.Addr()] = append(t.exact[e.pfx.Addr()], e)
		default:
			t.subnets = append(t.subnets, e)
		}
	}
	sort.SliceStable(t.subnets, func(i, j int) bool { return t.subnets[i].grp < t.subnets[j].grp })
	for i, e := range t.subnets {
		e.idx = i
		var li *lenIndex
		for j := range t.byLen {
			if t.byLen[j].bits == e.pfx.Bits() && t.byLen[j].v4 == e.pfx.Addr().Is4() {
				li = &t.byLen[j]
			}
		}
		if li == nil {
			t.byLen = append(t.byLen, lenIndex{bits: e.pfx.Bits(), v4: e.pfx.Addr().Is4(), m: map[netip.Prefix][]*entry{}})
			li = &t.byLen[len(t.byLen)-1]
		}
		li.m[e.pfx] = append(li.m[e.pfx], e)
	}
	return t
}

type lenIndex struct {
	bits int
	v4   bool
	m    map[netip.Prefix][]*entry // masked prefix → its entries in subnet order
}

// match finds the first entry for ip/port/proto (proto "" = unknown: only entries for any protocol),
// in group grp (-1 = any group): single addresses first, then subnets, as Kamailio.
func (t *table) match(grp int, ip netip.Addr, port int, proto string) *entry {
	ok := func(e *entry) bool {
		return (grp < 0 || e.grp == grp) && (e.port == 0 || e.port == port) && (e.proto == "" || e.proto == proto)
	}
	ip = ip.Unmap()
	for _, e := range t.exact[ip] {
		if ok(e) {
			return e
		}
	}
	var best *entry
	v4 := ip.Is4()
	for i := range t.byLen {
		li := &t.byLen[i]
		if li.v4 != v4 {
			continue
		}
		for _, e := range li.m[netip.PrefixFrom(ip, li.bits).Masked()] {
			if ok(e) {
				if best == nil || e.idx < best.idx {
					best = e
				}
				break
			}
		}
	}
	return best
}

func (t *table) matchDomain(grp int, name string, port int) *entry {
	for _, e := range t.domains {
		if (grp < 0 || e.grp == grp) && (e.port == 0 || e.port == port) && strings.EqualFold(e.domain, name) {
			return e
		}
	}
	return nil
}

// tag sets peer_tag_avp to the entry's tag, as Kamailio does for an entry that has one.
func (p *Permissions) tag(m *engine.Msg, e *entry) {
	if p.tagPV == "" || e.tag == "" {
		return
	}
	if m.AVPs == nil {
		m.AVPs = map[string][]engine.Value{}
	}
	m.AVPs[p.tagPV] = append(m.AVPs[p.tagPV], engine.StrVal(e.tag))
}

func (p *Permissions) source(m *engine.Msg, grp int) *entry {
	t := p.table.Load()
	if t == nil {
		return nil
	}
	e := t.match(grp, m.Src.Addr(), int(m.Src.Port()), m.Proto.String())
	if e != nil {
		p.tag(m, e)
	}
	return e
}

// address matches a given address (its transport is unknown: entries limited to one protocol do not
// match) or, when it is not an IP address, a host name of the address file.
func (p *Permissions) address(m *engine.Msg, grp int, addr string, port int) *entry {
	t := p.table.Load()
	if t == nil {
		return nil
	}
	var e *entry
	if ip, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(addr), "[]")); err == nil {
		e = t.match(grp, ip, port, "")
	} else {
		e = t.matchDomain(grp, strings.TrimSpace(addr), port)
	}
	if e != nil {
		p.tag(m, e)
	}
	return e
}

// Exports: KSR.permissions.*, Kamailio 5.6's KEMI signatures and return codes (1 / -1; the group for the
// *_group functions).
func (p *Permissions) Exports() []engine.Export {
	return []engine.Export{
		{Name: "allow_source_address", Fn: func(m *engine.Msg, grp int) int {
			if p.source(m, grp) != nil {
				return 1
			}
			return -1
		}},
		{Name: "allow_address", Fn: func(m *engine.Msg, grp int, addr string, port int) int {
			if p.address(m, grp, addr, port) != nil {
				return 1
			}
			return -1
		}},
		{Name: "allow_source_address_group", Fn: func(m *engine.Msg) int {
			if e := p.source(m, -1); e != nil {
				return e.grp
			}
			return -1
		}},
		{Name: "allow_address_group", Fn: func(m *engine.Msg, addr string, port int) int {
			if e := p.address(m, -1, addr, port); e != nil {
				return e.grp
			}
			return -1
		}},
	}
}

// RPC: permissions.addressReload and permissions.addressDump, as Kamailio's.
func (p *Permissions) RPC() []engine.Command {
	return []engine.Command{
		{Name: "permissions.addressReload", Help: "re-read the address table", Fn: func([]string) (any, error) {
			t, err := p.load()
			if err != nil {
				return nil, err
			}
			return map[string]any{"source": t.source, "entries": len(t.all)}, nil
		}},
		{Name: "permissions.addressDump", Help: "show the address table", Fn: func([]string) (any, error) {
			t := p.table.Load()
			if t == nil {
				return nil, errors.New("permissions: no address table")
			}
			out := make([]map[string]any, 0, len(t.all))
			for _, e := range t.all {
				ip := e.domain
				mask := 0
				if ip == "" {
					ip, mask = e.pfx.Addr().String(), e.pfx.Bits()
				}
				proto := e.proto
				if proto == "" {
					proto = "any"
				}
				out = append(out, map[string]any{"group": e.grp, "ip": ip, "mask": mask, "port": e.port, "proto": proto, "tag": e.tag})
			}
			return out, nil
		}},
	}
}

// Gauges: entries loaded.
func (p *Permissions) Gauges() []engine.Gauge {
	return []engine.Gauge{{Name: "permissions_address_entries", Help: "Entries of the permissions address table.",
		Value: func() float64 {
			if t := p.table.Load(); t != nil {
				return float64(len(t.all))
			}
			return 0
		}}}
}
