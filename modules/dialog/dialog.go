// Package dialog tracks INVITE dialogs (Kamailio's dialog module): their state from the INVITE through the
// 200 and ACK to the BYE, a lifetime that ends a stuck call with a BYE to both sides, profiles to count
// calls by a value, flags and variables per dialog, and the ctl commands dlg.list, dlg.terminate and
// dlg.stats. With backend = "redis" the dialogs are written to Redis, so that a restarted node (or another
// node) knows them.
//
// How it sees a call: KSR.dialog.dlg_manage() (or the dlg_flag set on the INVITE) creates the dialog; the
// replies the proxy receives (engine.ReplyHook, run before tm's) move it to early and confirmed; the final
// reply tm sends upstream (engine.TxFinalHook) fails it; in-dialog requests are seen when their request
// route ends (engine.RouteDoneHook): an ACK confirms, a relayed BYE ends the dialog.
package dialog

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

const modName = "dialog"

func init() {
	engine.Register(engine.Module{Name: modName, New: func() engine.Instance { return New() }})
}

// New returns the module with Kamailio's defaults.
func New() *Dialog {
	return &Dialog{
		DefaultTimeout: 43200, DlgFlag: -1, EnableStats: true, KaInterval: 0, KaFailedLimit: 1,
		EarlyTimeout: 300, Backend: "memory", RedisURL: "redis://127.0.0.1:6379/0", RedisPrefix: "siplua:dlg:",
		RedisTimeout: 200, ByeRetransmits: 4,
	}
}

// Dialog holds the parameters (Kamailio's names) and the dialog table.
type Dialog struct {
	// DefaultTimeout is the lifetime of a confirmed dialog in seconds (Kamailio default_timeout, 12 h).
	DefaultTimeout int `toml:"default_timeout"`
	// DlgFlag: an INVITE with this message flag set when its request route ends is tracked, as if the
	// script had called dlg_manage (Kamailio dlg_flag); -1 = only dlg_manage.
	DlgFlag int `toml:"dlg_flag"`
	// SendBye sends a BYE to both sides of a dialog that times out (Kamailio send_bye; $dlg_ctx(timeout_bye)
	// sets it per dialog).
	SendBye bool `toml:"send_bye"`
	// EnableStats keeps the counters of dlg.stats and the gauges (Kamailio enable_stats).
	EnableStats bool `toml:"enable_stats"`
	// KaInterval sends an in-dialog OPTIONS every this many seconds to the sides named by
	// dlg_set_property("ka-src"/"ka-dst"); 0 = keepalives off (Kamailio ka_timer).
	KaInterval int `toml:"ka_interval"`
	// KaFailedLimit ends the dialog after this many keepalives in a row got no answer or a 408/481.
	KaFailedLimit int `toml:"ka_failed_limit"`
	// EarlyTimeout ends a dialog that got no final reply after this many seconds (Kamailio
	// early_timeout); tm normally ends the call long before.
	EarlyTimeout int `toml:"early_timeout"`
	// ProfilesWithValue and ProfilesNoValue name the profiles (Kamailio profiles_with_value,
	// profiles_no_value).
	ProfilesWithValue []string `toml:"profiles_with_value"`
	ProfilesNoValue   []string `toml:"profiles_no_value"`
	// ByeRetransmits: how many times a BYE the module sends over UDP is sent again (T1 doubling) without
	// an answer.
	ByeRetransmits int `toml:"bye_retransmits"`
	// Backend is "memory" (default) or "redis" (dialogs written to Redis, loaded again at start).
	Backend      string `toml:"backend"`
	RedisURL     string `toml:"redis_url"`
	RedisPrefix  string `toml:"redis_prefix"`
	RedisTimeout int    `toml:"redis_timeout"` // milliseconds, per Redis call

	e   *engine.Engine
	log *slog.Logger
	tab table

	profiles map[string]bool // name → has values

	seq    atomic.Uint32 // h_id
	branch atomic.Uint64 // Via branches of the requests the module sends
	prefix string

	uacMu sync.Mutex
	uac   map[string]*uacReq // requests the module sent (BYE, OPTIONS), by Via branch

	stats struct{ processed, expired, failed, active, early atomic.Int64 }

	store *redisStore // nil for the memory backend

	kaStop chan struct{}
	wg     sync.WaitGroup

	listenMu  sync.Mutex
	listeners []func(Event)
}

// Validate checks the parameters.
func (d *Dialog) Validate() error {
	if d.DefaultTimeout <= 0 {
		return fmt.Errorf("default_timeout: expected a positive number of seconds, got %d", d.DefaultTimeout)
	}
	if d.DlgFlag < -1 || d.DlgFlag > 63 {
		return fmt.Errorf("dlg_flag: expected -1 (off) or a flag 0..63, got %d", d.DlgFlag)
	}
	if d.KaInterval < 0 {
		return fmt.Errorf("ka_interval: expected >= 0 seconds (0 = off), got %d", d.KaInterval)
	}
	if d.KaFailedLimit < 1 {
		return fmt.Errorf("ka_failed_limit: expected >= 1, got %d", d.KaFailedLimit)
	}
	if d.EarlyTimeout <= 0 {
		return fmt.Errorf("early_timeout: expected a positive number of seconds, got %d", d.EarlyTimeout)
	}
	if d.ByeRetransmits < 0 || d.ByeRetransmits > 10 {
		return fmt.Errorf("bye_retransmits: expected 0..10, got %d", d.ByeRetransmits)
	}
	seen := map[string]bool{}
	for _, list := range [][]string{d.ProfilesWithValue, d.ProfilesNoValue} {
		for _, p := range list {
			if p == "" || strings.ContainsAny(p, " \t;") {
				return fmt.Errorf("profiles: expected names without spaces or ';', got %q", p)
			}
			if seen[p] {
				return fmt.Errorf("profiles: %q is named twice", p)
			}
			seen[p] = true
		}
	}
	switch d.Backend {
	case "memory":
	case "redis":
		if u, err := url.Parse(d.RedisURL); err != nil || u.Host == "" {
			return fmt.Errorf("redis_url: expected redis://host:port[/db], got %q", d.RedisURL)
		}
		if d.RedisTimeout < 1 || d.RedisTimeout > 60000 {
			return fmt.Errorf("redis_timeout: expected 1..60000 (milliseconds), got %d", d.RedisTimeout)
		}
	default:
		return fmt.Errorf("backend: expected \"memory\" or \"redis\", got %q", d.Backend)
	}
	return nil
}

func (d *Dialog) initProfiles() {
	d.profiles = map[string]bool{}
	for _, p := range d.ProfilesWithValue {
		d.profiles[p] = true
	}
	for _, p := range d.ProfilesNoValue {
		d.profiles[p] = false
	}
}

// Start prepares the table, loads the dialogs of the Redis backend and starts the keepalive timer.
func (d *Dialog) Start(env *engine.Env) error {
	d.e, d.log = env.Engine, env.Log
	d.init()
	d.prefix = fmt.Sprintf("z9hG4bKdlg%x", time.Now().UnixNano()&0xffffffff)
	if d.Backend == "redis" {
		s, err := newRedisStore(d)
		if err != nil {
			return fmt.Errorf("dialog: redis backend: %w", err)
		}
		d.store = s
		if err := d.loadStore(); err != nil {
			d.logger().Warn("dialogs not loaded from redis", "err", err)
		}
	}
	if d.KaInterval > 0 {
		d.kaStop = make(chan struct{})
		d.wg.Add(1)
		go d.keepalives()
	}
	return nil
}

// init makes the maps (Start does it; tests and benchmarks without an engine too).
func (d *Dialog) init() {
	if d.tab.byCallID != nil {
		return
	}
	d.initProfiles()
	d.tab.init()
	d.uac = map[string]*uacReq{}
}

// Stop ends the keepalive timer and the Redis writer; dialog timers stop firing.
func (d *Dialog) Stop() error {
	if d.kaStop != nil {
		close(d.kaStop)
	}
	d.wg.Wait()
	d.tab.stopTimers()
	if d.store != nil {
		d.store.close()
	}
	return nil
}

func (d *Dialog) logger() *slog.Logger {
	if d.log == nil {
		return slog.Default()
	}
	return d.log
}

// Exports: KSR.dialog.*.
func (d *Dialog) Exports() []engine.Export {
	return []engine.Export{
		{Name: "dlg_manage", Fn: d.dlgManage},
		{Name: "dlg_bye", Fn: d.dlgBye},
		{Name: "dlg_set_timeout", Fn: d.dlgSetTimeout},
		{Name: "dlg_set_timeout_id", Fn: d.dlgSetTimeoutID},
		{Name: "set_dlg_profile", Fn: d.setProfile},
		{Name: "set_dlg_profile_static", Fn: func(m *engine.Msg, p string) int { return d.setProfile(m, p, "") }},
		{Name: "unset_dlg_profile", Fn: d.unsetProfile},
		{Name: "unset_dlg_profile_static", Fn: func(m *engine.Msg, p string) int { return d.unsetProfile(m, p, "") }},
		{Name: "is_in_profile", Fn: d.isInProfile},
		{Name: "is_in_profile_static", Fn: func(m *engine.Msg, p string) int { return d.isInProfile(m, p, "") }},
		{Name: "get_profile_size", Fn: d.getProfileSize},
		{Name: "get_profile_size_static", Fn: func(m *engine.Msg, p, spv string) int { return d.getProfileSize(m, p, "", spv) }},
		{Name: "dlg_isflagset", Fn: d.isFlagSet},
		{Name: "dlg_setflag", Fn: func(m *engine.Msg, f int) int { return d.changeFlag(m, f, true) }},
		{Name: "dlg_resetflag", Fn: func(m *engine.Msg, f int) int { return d.changeFlag(m, f, false) }},
		{Name: "is_known_dlg", Fn: d.isKnown},
		{Name: "dlg_get", Fn: d.dlgGet},
		{Name: "dlg_set_property", Fn: func(m *engine.Msg, p string) int { return d.property(m, p, true) }},
		{Name: "dlg_reset_property", Fn: func(m *engine.Msg, p string) int { return d.property(m, p, false) }},
		{Name: "dlg_bridge", Fn: func(m *engine.Msg, from, to, op string) int {
			d.logger().Warn("dlg_bridge is not supported", "from", from, "to", to)
			return -1
		}},
		{Name: "dlg_db_load_callid", Fn: func(m *engine.Msg, callid string) int { return -1 }},
		{Name: "dlg_db_load_extra", Fn: func(m *engine.Msg) int { return -1 }},
		{Name: "var_get", Fn: func(m *engine.Msg, k string) engine.Value { return d.varGet(m, k) }},
		{Name: "var_gete", Fn: func(m *engine.Msg, k string) engine.Value {
			if v := d.varGet(m, k); v.Kind != engine.Null {
				return v
			}
			return engine.StrVal("")
		}},
		{Name: "var_getw", Fn: func(m *engine.Msg, k string) engine.Value {
			if v := d.varGet(m, k); v.Kind != engine.Null {
				return v
			}
			return engine.StrVal("<null>")
		}},
		{Name: "var_is_null", Fn: func(m *engine.Msg, k string) int {
			if d.varGet(m, k).Kind == engine.Null {
				return 1
			}
			return -1
		}},
		{Name: "var_sets", Fn: func(m *engine.Msg, k, v string) int { return d.varSet(m, k, engine.StrVal(v)) }},
		{Name: "var_rm", Fn: func(m *engine.Msg, k string) int { return d.varSet(m, k, engine.Value{}) }},
	}
}

// Gauges: dialog_active and dialog_early.
func (d *Dialog) Gauges() []engine.Gauge {
	if !d.EnableStats {
		return nil
	}
	return []engine.Gauge{
		{Name: "dialog_active", Help: "Confirmed dialogs (calls up).", Value: func() float64 { return float64(d.stats.active.Load()) }},
		{Name: "dialog_early", Help: "Dialogs not answered yet.", Value: func() float64 { return float64(d.stats.early.Load()) }},
	}
}

// Event is what other modules (acc) are told when a dialog is answered, ends or fails.
type Event struct {
	Kind     EventKind
	Dlg      Info
	Code     int    // the final reply of a failed dialog
	Reason   string // "bye", "timeout", "terminated", or the reply's reason phrase
	Req      *engine.Msg
	Duration time.Duration // confirmed → end
}

// EventKind says what happened to a dialog.
type EventKind uint8

const (
	EvConfirmed EventKind = iota + 1 // 2xx went upstream
	EvEnded                          // BYE, timeout or dlg.terminate after it was confirmed
	EvFailed                         // a negative final reply, or it never got one
)

// Subscribe adds a listener of dialog events (acc's CDRs). Listeners run on the goroutine that changed the
// dialog (a worker, a timer): they must not block.
func (d *Dialog) Subscribe(fn func(Event)) {
	d.listenMu.Lock()
	d.listeners = append(d.listeners, fn)
	d.listenMu.Unlock()
}

func (d *Dialog) emit(ev Event) {
	d.listenMu.Lock()
	ls := d.listeners
	d.listenMu.Unlock()
	for _, fn := range ls {
		fn(ev)
	}
}
