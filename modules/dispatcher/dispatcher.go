// Package dispatcher is Kamailio's dispatcher module: sets of destinations (a dispatcher.list file or
// inline tables), selection by hash, round robin, priority or weight, failover through the failure route
// (ds_next_dst), OPTIONS probing that takes silent destinations out of rotation and back, and reload of
// the list by ctl or config reload without disturbing calls in progress.
package dispatcher

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

const modName = "dispatcher"

// flags bits (Kamailio's dispatcher "flags" parameter).
const (
	flagUserOnly = 1 // hash only the user part of URIs
	flagFailover = 2 // keep the other destinations for ds_next_dst / ds_mark_dst
)

// ds_probing_mode values.
const (
	probeNone        = 0
	probeAll         = 1
	probeInactive    = 2
	probeOnlyFlagged = 3
)

func init() {
	engine.Register(engine.Module{Name: modName, New: func() engine.Instance { return New() }})
}

// New returns a dispatcher with Kamailio's defaults.
func New() *Dispatcher {
	return &Dispatcher{ForceDst: 1, PingMethod: "OPTIONS", LatencyEstimatorAlpha: 900, PingFrom: "sip:dispatcher@localhost",
		ProbingThreshold: 1, InactiveThreshold: 1, log: slog.Default()}
}

// Dispatcher holds the module parameters and its running state.
type Dispatcher struct {
	// ListFile is a dispatcher.list file ("setid uri [flags [priority [attrs]]]"), relative to the
	// configuration file; re-read by dispatcher.reload and by every config reload.
	ListFile string `toml:"list_file" reload:"live"`
	// Dst are destinations written in the configuration, added to the file's.
	Dst []Dst `toml:"dst" reload:"live"`
	// Flags: 1 hash only the URI user, 2 failover (ds_next_dst, ds_mark_dst). Kamailio's default 0.
	Flags int `toml:"flags"`
	// ForceDst: 1 lets ds_select_dst overwrite a $du already set; 0 makes it fail.
	ForceDst int `toml:"force_dst"`
	// PingInterval is the probing interval in seconds (0 = no probing).
	PingInterval int `toml:"ds_ping_interval"`
	// PingTimeout (ms) is how long a ping waits for its final reply; 0 = half the ping interval, at most
	// 32 s (Timer F).
	PingTimeout int `toml:"ds_ping_timeout"`
	// ProbingMode: 0 only destinations flagged probing, 1 all, 2 only inactive probing ones, 3 only
	// flagged, and a ping result never sets the flag.
	ProbingMode int `toml:"ds_probing_mode"`
	// ProbingThreshold failed pings make a destination inactive.
	ProbingThreshold int `toml:"ds_probing_threshold"`
	// InactiveThreshold answered pings make an inactive destination active.
	InactiveThreshold int `toml:"ds_inactive_threshold"`
	// PingReplyCodes are replies counted as success besides 2xx: "code=404;class=3".
	PingReplyCodes string `toml:"ds_ping_reply_codes"`
	// PingFrom is the From URI of the pings.
	PingFrom string `toml:"ds_ping_from"`
	// PingMethod is the method of the pings.
	PingMethod string `toml:"ds_ping_method"`
	// PingLatencyStats keeps each destination's ping latency (Kamailio's ds_ping_latency_stats): average,
	// standard deviation, estimate, maximum and timeouts, shown by dispatcher.list as LATENCY (ms).
	PingLatencyStats int `toml:"ds_ping_latency_stats"`
	// LatencyEstimatorAlpha is the weight (per mille) of the previous estimate in the exponentially
	// weighted latency estimate (Kamailio's ds_latency_estimator_alpha, 900 = 0.9).
	LatencyEstimatorAlpha int `toml:"ds_latency_estimator_alpha"`
	// EventCallback names a Lua function run on dispatcher:dst-down / dispatcher:dst-up.
	EventCallback string `toml:"event_callback"`
	// SetidPVName receives the set id matched by ds_is_from_lists() ("$avp(dsid)").
	SetidPVName string `toml:"setid_pvname"`
	// AttrsPVName receives the attributes of the destination ds_is_from_list* matched.
	AttrsPVName string `toml:"attrs_pvname"`

	replyCodes       []int
	setidPV, attrsPV pvSpec
	e                *engine.Engine
	log              *slog.Logger
	dir              string
	list             atomic.Pointer[list]
	src              atomic.Pointer[source]
	mu               sync.Mutex // serializes loads
	pinger           *pinger
	changes          atomic.Uint64
	callbacks        atomic.Uint64
}

// source is where the list comes from: a file and inline entries, replaced by a config reload.
type source struct {
	file   string
	inline []Dst
}

// Validate checks the parameters.
func (ds *Dispatcher) Validate() error {
	for i, d := range ds.Dst {
		if err := checkDst(d); err != nil {
			return fmt.Errorf("dst[%d]: %w", i, err)
		}
	}
	if ds.Flags < 0 || ds.Flags > 3 {
		return fmt.Errorf("flags: expected 0..3 (1 hash user only, 2 failover), got %d", ds.Flags)
	}
	if ds.ForceDst != 0 && ds.ForceDst != 1 {
		return fmt.Errorf("force_dst: expected 0 or 1, got %d", ds.ForceDst)
	}
	if ds.PingInterval < 0 || ds.PingInterval > 86400 {
		return fmt.Errorf("ds_ping_interval: expected 0..86400 seconds, got %d", ds.PingInterval)
	}
	if ds.PingTimeout < 0 || ds.PingTimeout > 300000 {
		return fmt.Errorf("ds_ping_timeout: expected 0..300000 ms, got %d", ds.PingTimeout)
	}
	if ds.ProbingMode < 0 || ds.ProbingMode > 3 {
		return fmt.Errorf("ds_probing_mode: expected 0..3, got %d", ds.ProbingMode)
	}
	if ds.ProbingThreshold < 1 {
		return fmt.Errorf("ds_probing_threshold: expected ≥ 1, got %d", ds.ProbingThreshold)
	}
	if ds.InactiveThreshold < 1 {
		return fmt.Errorf("ds_inactive_threshold: expected ≥ 1, got %d", ds.InactiveThreshold)
	}
	if ds.PingLatencyStats < 0 || ds.PingLatencyStats > 1 {
		return fmt.Errorf("ds_ping_latency_stats: expected 0 (off) or 1 (on), got %d", ds.PingLatencyStats)
	}
	if ds.LatencyEstimatorAlpha < 0 || ds.LatencyEstimatorAlpha > 1000 {
		return fmt.Errorf("ds_latency_estimator_alpha: expected 0..1000 (per mille), got %d", ds.LatencyEstimatorAlpha)
	}
	if ds.PingMethod == "" || strings.ContainsAny(ds.PingMethod, " \t\r\n") || strings.ToUpper(ds.PingMethod) != ds.PingMethod {
		return fmt.Errorf("ds_ping_method: expected a SIP method like OPTIONS, got %q", ds.PingMethod)
	}
	if u, ok := rawsip.ParseURI(ds.PingFrom); !ok || u.Host == "" {
		return fmt.Errorf("ds_ping_from: expected a SIP URI, got %q", ds.PingFrom)
	}
	codes, err := parseReplyCodes(ds.PingReplyCodes)
	if err != nil {
		return fmt.Errorf("ds_ping_reply_codes: %w", err)
	}
	ds.replyCodes = codes
	if strings.ContainsAny(ds.EventCallback, " \t()$") {
		return fmt.Errorf("event_callback: expected a Lua function name, got %q", ds.EventCallback)
	}
	var ok bool
	if ds.setidPV, ok = parsePVSpec(ds.SetidPVName); !ok {
		return fmt.Errorf("setid_pvname: expected a pseudo-variable like \"$avp(dsid)\", got %q", ds.SetidPVName)
	}
	if ds.attrsPV, ok = parsePVSpec(ds.AttrsPVName); !ok {
		return fmt.Errorf("attrs_pvname: expected a pseudo-variable like \"$avp(dsattrs)\", got %q", ds.AttrsPVName)
	}
	return nil
}

// parseReplyCodes reads Kamailio's "code=NNN;class=N" list.
func parseReplyCodes(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "code":
			if err != nil || n < 100 || n > 699 {
				return nil, fmt.Errorf("expected code=100..699, got %q", p)
			}
		case "class":
			if err != nil || n < 1 || n > 6 {
				return nil, fmt.Errorf("expected class=1..6, got %q", p)
			}
		default:
			return nil, fmt.Errorf("expected \"code=NNN\" or \"class=N\" items separated by ';', got %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// Start loads the list and starts the pinger.
func (ds *Dispatcher) Start(env *engine.Env) error {
	ds.e, ds.log = env.Engine, env.Log
	if cfg := env.Engine.Config(); cfg != nil {
		ds.dir = cfg.Dir
	}
	ds.src.Store(&source{file: ds.ListFile, inline: ds.Dst})
	if _, err := ds.load(); err != nil {
		return err
	}
	if ds.ListFile == "" && len(ds.Dst) == 0 {
		ds.log.Warn("no list_file and no [[modules.dispatcher.dst]]: every selection fails (-1)")
	}
	if ds.PingInterval > 0 {
		ds.pinger = newPinger(ds)
		go ds.pinger.run()
	}
	return nil
}

// Stop stops the pinger.
func (ds *Dispatcher) Stop() error {
	if ds.pinger != nil {
		ds.pinger.stop()
	}
	return nil
}

// Reload takes the list of a reloaded configuration (file re-read, inline tables replaced).
func (ds *Dispatcher) Reload(next engine.Instance) error {
	n, ok := next.(*Dispatcher)
	if !ok {
		return fmt.Errorf("dispatcher: reload with a %T", next)
	}
	prev := ds.src.Swap(&source{file: n.ListFile, inline: n.Dst})
	if _, err := ds.load(); err != nil {
		ds.src.Store(prev)
		return err
	}
	return nil
}

// ReloadsFiles marks Dispatcher as an engine.FileReloader: every config reload re-reads list_file.
func (ds *Dispatcher) ReloadsFiles() {}

// load reads the list from its sources and publishes it; calls in progress keep the destinations they
// chose (the failover list is in their AVPs), and destinations that stay keep their state.
func (ds *Dispatcher) load() (*list, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	src := ds.src.Load()
	var entries []Dst
	name := "config"
	if src.file != "" {
		path := src.file
		if !filepath.IsAbs(path) && ds.dir != "" {
			path = filepath.Join(ds.dir, path)
		}
		fe, err := parseListFile(path)
		if err != nil {
			return nil, err
		}
		entries, name = fe, path
	}
	entries = append(entries, src.inline...)
	l, err := buildList(entries, name, ds.list.Load(), netResolve, func(msg string, args ...any) { ds.log.Warn(msg, args...) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ds.list.Store(l)
	ds.log.Info("destination list loaded", "source", name, "sets", len(l.sets), "destinations", l.count())
	return l, nil
}

// Exports: KSR.dispatcher.*, with Kamailio 5.6's KEMI signatures.
func (ds *Dispatcher) Exports() []engine.Export {
	sel := func(op int) func(m *engine.Msg, set, alg int) int {
		return func(m *engine.Msg, set, alg int) int { return ds.selectDst(m, set, alg, 0xffff, op) }
	}
	selLimit := func(op int) func(m *engine.Msg, set, alg, limit int) int {
		return func(m *engine.Msg, set, alg, limit int) int { return ds.selectDst(m, set, alg, limit, op) }
	}
	return []engine.Export{
		{Name: "ds_select_dst", Fn: sel(opDstURI)},
		{Name: "ds_select_dst_limit", Fn: selLimit(opDstURI)},
		{Name: "ds_select_domain", Fn: sel(opRURI)},
		{Name: "ds_select_domain_limit", Fn: selLimit(opRURI)},
		{Name: "ds_select", Fn: sel(opXAVP)},
		{Name: "ds_select_limit", Fn: selLimit(opXAVP)},
		{Name: "ds_select_routes", Fn: func(m *engine.Msg, rules, mode string) int { return ds.selectRoutes(m, rules, mode, 0xffff) }},
		{Name: "ds_select_routes_limit", Fn: ds.selectRoutes},
		{Name: "ds_next_dst", Fn: func(m *engine.Msg) int { return ds.updateDst(m, true, opDstURI) }},
		{Name: "ds_next_domain", Fn: func(m *engine.Msg) int { return ds.updateDst(m, true, opRURI) }},
		{Name: "ds_set_dst", Fn: func(m *engine.Msg) int { return ds.updateDst(m, false, opDstURI) }},
		{Name: "ds_set_domain", Fn: func(m *engine.Msg) int { return ds.updateDst(m, false, opRURI) }},
		{Name: "ds_mark_dst", Fn: func(m *engine.Msg) int {
			st := stInactive
			if ds.ProbingMode == probeAll {
				st |= stProbing
			}
			return ds.markDst(m, st)
		}},
		{Name: "ds_mark_dst_state", Fn: func(m *engine.Msg, s string) int {
			if s == "" {
				st := stInactive
				if ds.ProbingMode == probeAll {
					st |= stProbing
				}
				return ds.markDst(m, st)
			}
			st := parseFlags(s)
			if st < 0 {
				return -1
			}
			return ds.markDst(m, st)
		}},
		{Name: "ds_is_from_lists", Fn: func(m *engine.Msg) int { return ds.isFromList(m, -1, 2, "") }},
		{Name: "ds_is_from_list", Fn: func(m *engine.Msg, set int) int { return ds.isFromList(m, set, 2, "") }},
		{Name: "ds_is_from_list_mode", Fn: func(m *engine.Msg, set, mode int) int { return ds.isFromList(m, set, mode, "") }},
		{Name: "ds_is_from_list_uri", Fn: func(m *engine.Msg, set, mode int, uri string) int {
			if uri == "" {
				return ds.isFromList(m, set, mode, "")
			}
			return ds.isFromList(m, set, mode, uri)
		}},
		{Name: "ds_list_exists", Fn: func(m *engine.Msg, set int) int {
			if l := ds.list.Load(); l != nil && l.sets[set] != nil {
				return 1
			}
			return -1
		}},
		{Name: "ds_is_active", Fn: func(m *engine.Msg, set int) int { return ds.isActive(set, "") }},
		{Name: "ds_is_active_uri", Fn: func(m *engine.Msg, set int, uri string) int { return ds.isActive(set, uri) }},
		{Name: "ds_reload", Fn: func(m *engine.Msg) int {
			// re-reading a file is disk I/O on a worker; Kamailio does the same, and the list is small
			if _, err := ds.load(); err != nil {
				ds.log.Error("ds_reload failed", "err", err)
				return -1
			}
			return 1
		}},
		// call load (algorithm 10) needs dialog tracking, which siplua does not have
		{Name: "ds_load_unset", Fn: func(m *engine.Msg) int { return -1 }},
		{Name: "ds_load_update", Fn: func(m *engine.Msg) int { return -1 }},
	}
}

// OnReply absorbs the replies to the pings (engine.ReplyHook).
func (ds *Dispatcher) OnReply(m *engine.Msg) bool {
	if ds.pinger == nil {
		return false
	}
	return ds.pinger.onReply(m)
}

// Gauges: destinations usable and not.
func (ds *Dispatcher) Gauges() []engine.Gauge {
	count := func(active bool) func() float64 {
		return func() float64 {
			l := ds.list.Load()
			if l == nil {
				return 0
			}
			n := 0
			for _, s := range l.sets {
				for _, d := range s.dests {
					if skip(d.state.Load()) != active {
						n++
					}
				}
			}
			return float64(n)
		}
	}
	return []engine.Gauge{
		{Name: "dispatcher_destinations_active", Help: "Dispatcher destinations in rotation.", Value: count(true)},
		{Name: "dispatcher_destinations_inactive", Help: "Dispatcher destinations out of rotation (inactive or disabled).", Value: count(false)},
		{Name: "dispatcher_state_changes", Help: "Dispatcher destinations that went down or up.", Value: func() float64 { return float64(ds.changes.Load()) }},
	}
}

// RPC: dispatcher.reload, dispatcher.list, dispatcher.set_state, dispatcher.ping_active, as Kamailio's.
func (ds *Dispatcher) RPC() []engine.Command {
	return []engine.Command{
		{Name: "dispatcher.reload", Help: "re-read the destination list", Fn: func([]string) (any, error) {
			l, err := ds.load()
			if err != nil {
				return nil, err
			}
			return map[string]any{"source": l.source, "sets": len(l.sets), "destinations": l.count()}, nil
		}},
		{Name: "dispatcher.list", Help: "show the destination sets and their state", Fn: func([]string) (any, error) {
			return ds.listRPC(), nil
		}},
		{Name: "dispatcher.set_state", Help: "set the state of a destination: STATE (a, i, d, t, with p) GROUP ADDRESS|DUID|all",
			Fn: ds.setStateRPC},
		{Name: "dispatcher.ping_active", Help: "show or set (0/1) whether destinations are pinged", Fn: func(args []string) (any, error) {
			p := ds.pinger
			if p == nil {
				return nil, errors.New("dispatcher.ping_active: probing is off (ds_ping_interval = 0)")
			}
			old := 0
			if p.active.Load() {
				old = 1
			}
			if len(args) == 0 {
				return map[string]any{"OldPingState": old}, nil
			}
			v, err := strconv.Atoi(args[0])
			if err != nil || (v != 0 && v != 1) {
				return nil, fmt.Errorf("dispatcher.ping_active: expected 0 or 1, got %q", args[0])
			}
			p.active.Store(v == 1)
			return map[string]any{"NewPingState": v, "OldPingState": old}, nil
		}},
	}
}

func (ds *Dispatcher) listRPC() any {
	l := ds.list.Load()
	var recs []any
	if l != nil {
		for _, id := range l.ids {
			var targets []any
			for _, d := range l.sets[id].dests {
				targets = append(targets, map[string]any{"DEST": map[string]any{
					"URI": d.uri, "FLAGS": flagString(d.state.Load()), "PRIORITY": d.priority,
					"ATTRS": map[string]any{"BODY": d.attrs, "DUID": d.duid, "MAXLOAD": 0, "WEIGHT": d.weight,
						"RWEIGHT": d.rweight, "SOCKET": d.socket},
				}})
				if ds.PingLatencyStats > 0 {
					targets[len(targets)-1].(map[string]any)["DEST"].(map[string]any)["LATENCY"] = d.lat.rpc()
				}
			}
			recs = append(recs, map[string]any{"SET": map[string]any{"ID": id, "TARGETS": targets}})
		}
	}
	n := 0
	if l != nil {
		n = len(l.sets)
	}
	return map[string]any{"NRSETS": n, "RECORDS": recs}
}

// setStateRPC is Kamailio's dispatcher.set_state: state 0/i (inactive), 1/a (active), 2/d (disabled),
// 3/t (trying), with a second letter p for probing; group; an address, a duid or "all".
func (ds *Dispatcher) setStateRPC(args []string) (any, error) {
	if len(args) != 3 {
		return nil, errors.New("dispatcher.set_state: expected STATE GROUP ADDRESS")
	}
	st, grp, addr := args[0], args[1], args[2]
	var state uint32
	switch st[0] {
	case '0', 'i', 'I':
		state = stInactive
	case '1', 'a', 'A':
	case '2', 'd', 'D':
		state = stDisabled
	case '3', 't', 'T':
		state = stTrying
	default:
		return nil, fmt.Errorf("dispatcher.set_state: state: expected a, i, d or t (with p for probing), got %q", st)
	}
	if len(st) > 1 && (st[1] == 'p' || st[1] == 'P') {
		state |= stProbing
	}
	group, err := strconv.Atoi(grp)
	if err != nil {
		return nil, fmt.Errorf("dispatcher.set_state: group: expected a number, got %q", grp)
	}
	l := ds.list.Load()
	if l == nil || l.sets[group] == nil {
		return nil, fmt.Errorf("dispatcher.set_state: destination set %d not found", group)
	}
	s := l.sets[group]
	n := 0
	for _, d := range s.dests {
		if addr == "all" || strings.EqualFold(d.uri, addr) || (d.duid != "" && d.duid == addr) {
			ds.setState(s, d, state)
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("dispatcher.set_state: destination %s not found in set %d", addr, group)
	}
	return map[string]any{"updated": n}, nil
}
