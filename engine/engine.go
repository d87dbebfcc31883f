// Package engine is siplua's message path: the worker pool that routes each message on a script state, the
// message context modules work on (Msg: raw positions, edits, reply and relay building), the module
// lifecycle and registry names, and reload. Sockets are engine/transport's, configuration decoding
// engine/config's, DNS engine/resolve's, byte positions engine/rawsip's.
package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/engine/resolve"
	"github.com/siplua/siplua/engine/transport"
)

// Script is a compiled routing program (luabind provides it); each worker gets its own State.
type Script interface {
	NewState(worker int) (State, error)
}

// State runs the routes for one worker; only that worker's goroutine uses it.
type State interface {
	// RequestRoute runs ksr_request_route. A *RouteError reports a script failure.
	RequestRoute(m *Msg) error
	// ReplyRoute runs ksr_reply_route if the script defines it.
	ReplyRoute(m *Msg) error
	// Call runs a script function by name (tm's failure, branch and onreply routes).
	Call(fname string, m *Msg) error
	Close()
}

// RouteError is a script failure while routing a message.
type RouteError struct {
	Where string // "script.lua:12"
	Err   error
}

func (e *RouteError) Error() string { return e.Where + ": " + e.Err.Error() }
func (e *RouteError) Unwrap() error { return e.Err }

// Compiler builds a Script from a configuration (it reads cfg.ScriptPath and cfg.Mods).
type Compiler func(cfg *Config) (Script, error)

// Env is what modules get in Start.
type Env struct {
	Engine *Engine
	Log    *slog.Logger
}

// Stats are the engine's counters.
type Stats struct {
	requests, replies                           atomic.Uint64
	repliesLocal, repliesRelayed, forwarded     atomic.Uint64
	dropQueue, dropParse, dropScript, luaErrors atomic.Uint64
	dropPrio, overload, routeTimeouts           atomic.Uint64
	busy                                        atomic.Int64

	byMethod                 [len(Methods)]atomic.Uint64
	sentByClass              [2][7]atomic.Uint64 // [origin][code/100], 0 = out of range
	reqDur, resDur           histogram
	reloadsOK, reloadsFailed atomic.Uint64
	strict                   strictStats // stricter parsing: rejections, bad-Via drops, log limiter (stats.go)
}

// Snapshot returns the counters by name.
func (s *Stats) Snapshot() map[string]uint64 {
	m := map[string]uint64{
		"requests_received": s.requests.Load(), "replies_received": s.replies.Load(),
		"replies_local": s.repliesLocal.Load(), "replies_relayed": s.repliesRelayed.Load(),
		"requests_forwarded": s.forwarded.Load(),
		"dropped_queue_full": s.dropQueue.Load(), "dropped_parse_error": s.dropParse.Load(),
		"dropped_script": s.dropScript.Load(), "lua_errors": s.luaErrors.Load(),
		"dropped_priority_queue_full": s.dropPrio.Load(), "rejected_overload": s.overload.Load(),
		"route_timeouts": s.routeTimeouts.Load(),
		"workers_busy":   uint64(max(0, s.busy.Load())),
		"reloads_ok":     s.reloadsOK.Load(), "reloads_failed": s.reloadsFailed.Load(),
	}
	s.addLabelled(m)
	s.strict.add(m)
	return m
}

// Engine is a running proxy.
type Engine struct {
	cfg       *Config
	log       *slog.Logger
	compile   Compiler
	parser    *sip.Parser
	listeners []*Listener
	queue     chan *Msg
	prio      chan *Msg // replies, ACK and CANCEL: served before queue
	// jobs are routes modules run on a worker (tm failure routes from timers): kept apart from the queue so
	// that traffic cannot starve them, with an overflow list instead of a goroutine per job.
	jobs        chan *Msg
	jobMu       sync.Mutex
	jobOverflow []*Msg
	workers     []*worker
	gen         atomic.Pointer[Generation]
	liveGens    atomic.Int64 // generations not closed: the current one and older ones still referenced
	genSeq      atomic.Uint64
	tagPrefix   string
	routeLimit  atomic.Int64 // [lua] route_timeout in ns, for the workers' budgets and the watchdog
	stats       Stats
	start       time.Time

	tr *transport.Transport // the listeners and TCP connections
	// capture, when set (ListenOffline), takes every message the engine would send instead of the network.
	capture func(Sent)

	res *resolve.Resolver

	myHosts      map[string]bool // lower-case hosts (IPs, advertise, aliases) that are "myself"
	myPorts      map[int]bool
	aliasAnyPort map[string]bool

	pvs        map[string]PV
	replyHooks []ReplyHook
	txReplier  TxReplier // found once at start: sl's send_reply and script errors ask it per message
	routeDone  []RouteDoneHook
	txFinal    []TxFinalHook // modules told of each transaction's final reply (dialog, acc)
	taps       []WireTap     // modules that mirror the traffic (siptrace)

	reloadMu sync.Mutex                    // one reload at a time
	current  atomic.Pointer[Config]        // the configuration of the last successful reload (or cfg)
	level    atomic.Pointer[slog.LevelVar] // the process log level, set live by reloads and log.level
	events   events                        // last reloads and route errors, for the web page (events.go)

	wg      sync.WaitGroup
	stopped chan struct{}
}

// Generation is one compiled script with a state per worker. It lives while something references it:
// being the current generation, each worker routing with it, and each holder such as a transaction (a
// transaction's routes run on the generation that created it, however many reloads come in between).
// The last Release closes its states.
type Generation struct {
	id     uint64
	e      *Engine
	script Script
	states []State // states[i] is used only by worker i
	refs   atomic.Int64
}

// ID is the generation's number (1 at start, +1 per reload).
func (g *Generation) ID() uint64 { return g.id }

// Hold takes a reference that keeps g's states open until Release; false when g is already closed (nil
// too).
func (g *Generation) Hold() bool {
	if g == nil {
		return false
	}
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference taken with Hold; the last one closes the states.
func (g *Generation) Release() {
	if g == nil {
		return
	}
	if n := g.refs.Add(-1); n == 0 {
		g.close()
	} else if n < 0 { // a bug in a holder: say so rather than take the process down
		g.e.log.Error("script generation released more often than held", "generation", g.id, "refs", n)
	}
}

// close frees the states: nobody references g any more, so no goroutine uses them.
func (g *Generation) close() {
	for i, st := range g.states {
		if st != nil {
			st.Close()
			g.states[i] = nil
		}
	}
	g.e.liveGens.Add(-1)
	g.e.log.Debug("script generation drained", "generation", g.id)
}

// New prepares an engine: starts modules and builds one script state per worker. It does not listen yet.
func New(cfg *Config, compile Compiler, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	var tag [16]byte
	_, _ = rand.Read(tag[:])
	e := &Engine{
		cfg: cfg, log: log.With("module", "core"), compile: compile, parser: sip.NewParser(),
		queue: make(chan *Msg, cfg.Core.Queue), prio: make(chan *Msg, max(4*cfg.Core.Queue, 256)), jobs: make(chan *Msg, cfg.Core.Queue),
		tagPrefix: hex.EncodeToString(tag[:]), start: time.Now(), stopped: make(chan struct{}),
	}
	e.tr = e.newTransport()
	if err := e.loadTLS(cfg); err != nil {
		return nil, err
	}
	var servers []string
	for _, s := range cfg.Core.DNSServers {
		a, _ := DNSServerAddr(s) // validated when parsed
		servers = append(servers, a)
	}
	e.res, _ = resolve.New(resolve.Config{
		Servers: servers, Timeout: time.Duration(cfg.Core.DNSTimeout) * time.Second,
		MaxInflight: cfg.Core.DNSMaxInflight, MaxWaiting: cfg.Core.Queue, CacheSize: cfg.Core.DNSCacheSize,
		NegTTL: time.Duration(cfg.Core.DNSNegTTL) * time.Second, Log: log.With("module", "dns"),
	})
	e.indexModules()
	for _, l := range cfg.Mods.List {
		if h, ok := l.Inst.(RouteDoneHook); ok {
			e.routeDone = append(e.routeDone, h)
		}
	}
	for _, l := range cfg.Mods.List {
		if s, ok := l.Inst.(Starter); ok {
			if err := s.Start(&Env{Engine: e, Log: log.With("module", l.Name)}); err != nil {
				return nil, fmt.Errorf("start module %s: %w", l.Name, err)
			}
		}
	}
	n := cfg.WorkerCount()
	e.routeLimit.Store(int64(cfg.Lua.RouteBudget()))
	e.workers = make([]*worker, n)
	for i := range e.workers {
		e.workers[i] = &worker{id: i, vars: map[string]Value{}, wake: make(chan struct{}, 1), budget: newBudget(&e.routeLimit)}
	}
	g, err := e.newGeneration(cfg)
	if err != nil {
		e.stopModules()
		return nil, err
	}
	g.id = e.genSeq.Add(1)
	e.gen.Store(g)
	e.current.Store(cfg)
	return e, nil
}

// newGeneration compiles cfg's script and builds a state per worker; the generation starts with one
// reference (for becoming the current one).
func (e *Engine) newGeneration(cfg *Config) (*Generation, error) {
	script, err := e.compile(cfg)
	if err != nil {
		return nil, err
	}
	g := &Generation{e: e, script: script, states: make([]State, len(e.workers))}
	g.refs.Store(1)
	for i := range g.states {
		st, err := script.NewState(i)
		if err != nil {
			for _, s := range g.states[:i] {
				s.Close()
			}
			return nil, err
		}
		g.states[i] = st
	}
	e.liveGens.Add(1)
	return g, nil
}

// LiveGenerations counts the script generations not closed yet: the current one and older ones that a
// worker or a transaction still uses.
func (e *Engine) LiveGenerations() int { return int(e.liveGens.Load()) }

// Config returns the configuration the engine runs.
func (e *Engine) Config() *Config { return e.cfg }

// Log returns the engine's logger.
func (e *Engine) Log() *slog.Logger { return e.log }

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Uptime is the time since the engine was created.
func (e *Engine) Uptime() time.Duration { return time.Since(e.start) }

// Generation is the id of the script generation that serves new messages.
func (e *Engine) Generation() uint64 { return e.gen.Load().id }

// Listeners returns the bound sockets (after Listen).
func (e *Engine) Listeners() []*Listener { return e.listeners }

// Listen binds every [core] listen address.
func (e *Engine) Listen() error {
	for _, la := range e.cfg.Listen {
		if _, err := e.tr.Listen(la.Proto, la.Addr); err != nil {
			e.tr.Close()
			return err
		}
	}
	e.listeners = e.tr.Listeners()
	// Stable across restarts, as Kamailio's: a request retransmitted over a restart gets the same To-tag.
	sum := md5.Sum([]byte("siplua-stateless" + e.listeners[0].Addr.String()))
	e.tagPrefix = hex.EncodeToString(sum[:])
	e.computeMyself()
	return nil
}

// Serve runs the workers and socket readers until ctx ends, then stops gracefully: it stops reading,
// lets the workers finish what is queued (bounded by shutdown_timeout) and stops the modules.
func (e *Engine) Serve(ctx context.Context) error {
	if e.listeners == nil {
		if err := e.Listen(); err != nil {
			return err
		}
	}
	var readers sync.WaitGroup
	for _, l := range e.listeners {
		readers.Add(1)
		go func() {
			defer readers.Done()
			e.tr.Serve(l)
		}()
		e.log.Info("listening", "socket", l.String(), "sent_by", l.SentBy)
	}
	for _, w := range e.workers {
		e.wg.Add(1)
		go e.runWorker(w)
	}
	for _, w := range e.cfg.Warnings() {
		e.log.Warn(w)
	}
	wdStop := make(chan struct{})
	defer close(wdStop)
	go e.watchdog(wdStop) // bounds the routes until the workers are done, the drain at shutdown too
	e.log.Info("serving", "workers", len(e.workers), "queue", cap(e.queue), "script", e.cfg.ScriptPath())
	<-ctx.Done()
	e.log.Info("stopping")
	e.tr.Close()
	readers.Wait()
	close(e.stopped)
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Duration(e.cfg.Core.ShutdownTimeout) * time.Second):
		e.log.Warn("shutdown timeout: messages still queued were not routed", "queued", len(e.queue)+len(e.prio))
	}
	e.tr.CloseConns()
	e.stopModules()
	return nil
}

// stopModules stops the modules in the reverse of their start order (a module stops before those it needs).
func (e *Engine) stopModules() {
	for _, l := range slices.Backward(e.cfg.Mods.List) {
		if s, ok := l.Inst.(Stopper); ok {
			if err := s.Stop(); err != nil {
				e.log.Warn("module stop", "name", l.Name, "err", err)
			}
		}
	}
}

func (e *Engine) computeMyself() {
	e.myHosts, e.myPorts, e.aliasAnyPort = map[string]bool{}, map[int]bool{}, map[string]bool{}
	addHost := func(a netip.Addr) {
		a = a.Unmap()
		e.myHosts[a.String()] = true
		if a.Is6() {
			e.myHosts["["+a.String()+"]"] = true
		}
	}
	for _, l := range e.listeners {
		e.myPorts[int(l.Addr.Port())] = true
		if !l.Wildcard() {
			addHost(l.Addr.Addr())
			continue
		}
		// A wildcard socket is every address of the machine (of its family; [::] is dual-stack).
		for _, a := range interfaceAddrs() {
			if l.Fits(a) {
				addHost(a)
			}
		}
	}
	if adv := e.cfg.Core.Advertise; adv != "" {
		host, port, _ := SplitHostPort(adv)
		e.myHosts[strings.ToLower(host)] = true
		if port > 0 {
			e.myPorts[port] = true
		}
	}
	for _, a := range e.cfg.Core.Aliases {
		host, port, err := SplitHostPort(a)
		if err != nil {
			continue
		}
		if port == 0 {
			e.aliasAnyPort[strings.ToLower(host)] = true
		} else {
			e.myHosts[strings.ToLower(host)] = true
			e.myPorts[port] = true
		}
	}
}

// interfaceAddrs lists the machine's addresses, read once at start as Kamailio does for a wildcard listen.
func interfaceAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// IsMyself reports whether host[:port] is this proxy: one of its socket addresses, the advertised address or
// an alias. Port 0 means the default SIP port 5060, as in Kamailio.
func (e *Engine) IsMyself(host string, port int) bool {
	h := strings.ToLower(host)
	if e.aliasAnyPort[h] {
		return true
	}
	if !e.myHosts[h] {
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err != nil || !e.myHosts[a.Unmap().String()] {
			return false
		}
	}
	if port == 0 {
		port = 5060
	}
	return e.myPorts[port]
}

// IsMyselfOn is Kamailio's check_self(host, port, proto), what KSR.is_myself* use: host is one of the
// proxy's addresses, its advertised address or an alias; port 0 (a URI without a port) matches any port the
// proxy listens on; transport ("udp", "tcp"; "" for any) must be the protocol of one of its sockets, with
// that port when one is given. An unknown transport (tls, ws: no such socket) never matches.
func (e *Engine) IsMyselfOn(host string, port int, transport string) bool {
	h := strings.ToLower(host)
	if e.aliasAnyPort[h] && transport == "" {
		return true
	}
	if !e.myHosts[h] && !e.aliasAnyPort[h] {
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err != nil || !e.myHosts[a.Unmap().String()] {
			return false
		}
	}
	if transport == "" {
		return port == 0 || e.myPorts[port]
	}
	proto, ok := ParseProto(transport)
	if !ok {
		return false
	}
	for _, l := range e.listeners {
		if l.Proto == proto && (port == 0 || int(l.Addr.Port()) == port) {
			return true
		}
	}
	return false
}

// IsMyselfAddr reports whether an IP address is one of the proxy's.
func (e *Engine) IsMyselfAddr(ip netip.Addr) bool { return e.myHosts[ip.Unmap().String()] }

var errNotRequest = errors.New("not a request")

// sendReplyBytes sends a reply the proxy generated for request m.
func (e *Engine) sendReplyBytes(m *Msg, b []byte) error {
	if m.Proto.Stream() && m.conn != nil {
		if err := m.conn.Write(b); err == nil {
			if len(e.taps) > 0 {
				e.tapSent(m.Proto, m.Local, m.Src, b)
			}
			return nil
		}
	}
	dst := m.Src
	if m.Proto == UDP {
		if port, ok := viaReplyPort(m); ok {
			dst = netip.AddrPortFrom(m.Src.Addr(), uint16(port))
		}
	}
	return e.send(m.Proto, m.Local, dst, b, m.ReplyNoConnect)
}

// viaReplyPort is the port a UDP reply goes to per RFC 3261 §18.2.2 and RFC 3581: the source port when rport
// is asked for, else the sent-by port (5060 if absent).
func viaReplyPort(m *Msg) (int, bool) {
	i := m.Raw.Find(m.Buf, "via")
	if i < 0 {
		return 0, false
	}
	// Only the first value counts: "Via: SIP/2.0/UDP a:5070, SIP/2.0/UDP b:5080;rport" is two hops, and
	// the rport of the second is not the client's. Read on the bytes: this runs for every UDP reply.
	raw := m.Raw.Hdrs[i].Value(m.Buf)
	v := raw[:rawsip.FirstValueEnd(raw)]
	if semi := bytes.IndexByte(v, ';'); semi >= 0 {
		if m.ForceRport || hasParam(v[semi:], "rport") {
			return 0, false
		}
		v = v[:semi]
	} else if m.ForceRport {
		return 0, false
	}
	v = bytes.TrimSpace(v)
	if sp := bytes.LastIndexAny(v, " \t"); sp >= 0 {
		v = v[sp+1:]
	}
	port, ok := sentByPort(v)
	if !ok {
		return 0, false
	}
	if port == 0 {
		port = 5060
	}
	return port, true
}

// hasParam reports whether a ;-separated parameter list has parameter name, as rawsip.Param finds it,
// without allocating.
func hasParam(params []byte, name string) bool {
	_, _, _, ok := rawsip.Param(rawsip.View(params), name) // the view does not outlive the call
	return ok
}

// sentByPort is the port of a Via sent-by ("host", "host:port", "[v6]:port"), 0 when absent, with
// SplitHostPort's rules, without allocating.
func sentByPort(s []byte) (int, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var ps []byte
	if s[0] == '[' {
		end := bytes.IndexByte(s, ']')
		if end < 0 {
			return 0, false
		}
		rest := s[end+1:]
		if len(rest) == 0 {
			return 0, true
		}
		if rest[0] != ':' {
			return 0, false
		}
		ps = rest[1:]
	} else {
		host, p, found := bytes.Cut(s, []byte(":"))
		if !found {
			return 0, true
		}
		if len(host) == 0 || bytes.IndexByte(p, ':') >= 0 {
			return 0, false
		}
		ps = p
	}
	ps = bytes.TrimPrefix(ps, []byte("+")) // strconv.Atoi's sign
	port, ok := atoiBytes(ps)
	if !ok || port < 1 || port > 65535 {
		return 0, false
	}
	return port, true
}

// NewMsg scans and parses raw bytes into a message context as the workers do, for tests, fuzzing and tools
// that run module functions without a socket. Release is not needed.
func (e *Engine) NewMsg(buf []byte, src netip.AddrPort, proto Proto) (*Msg, error) {
	m := &Msg{Buf: buf, Src: src, Proto: proto, E: e, Vars: map[string]Value{}}
	if len(e.listeners) > 0 {
		m.Local = e.listeners[0]
	}
	if err := m.scan(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	// The strict checks (an unusable top Via, a repeated header, another SIP version) are the receive path's
	// policy; a message built here for a tool, a test or a module's own use only has to parse.
	var rej *rejectError
	var bv badViaError
	if err := m.checkRaw(); err != nil && !errors.As(err, &rej) && !errors.As(err, &bv) {
		return nil, err
	}
	// Parsed at once (not lazily): a tool or test may hand the message to several goroutines.
	if !m.reply {
		m.origRURI() // cached now, read-only afterwards
	}
	if m.parsed(); m.parse != parseOK {
		_, err := e.parser.ParseSIP(buf)
		return nil, fmt.Errorf("parse: %w", err)
	}
	return m, nil
}

// Outgoing returns the message as it would be relayed: received bytes with the script's edits applied.
func (m *Msg) Outgoing() []byte { return m.appendOutgoing(nil) }
