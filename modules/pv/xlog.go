package pv

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
)

// The xlog and kex namespaces live in this package because they evaluate pseudo-variables with the pv
// module's compiled specs; each is a module of its own (KSR.xlog, KSR.kex), always loaded like pv.
func init() {
	engine.Register(engine.Module{Name: "xlog", Builtin: true, New: func() engine.Instance { return &XLog{} }})
	engine.Register(engine.Module{Name: "kex", Builtin: true, New: func() engine.Instance { return &Kex{} }})
}

// Kamailio's log levels (L_ALERT .. L_DBG), as xlog's "L_*" names and kex.setdebug take them.
const (
	kAlert  = -5
	kBug    = -4
	kCrit2  = -3
	kCrit   = -2
	kErr    = -1
	kWarn   = 0
	kNotice = 1
	kInfo   = 2
	kDbg    = 3
)

// slogLevel maps a Kamailio level to slog's: notice is info and crit/alert are error, as [core] log_level
// reads them.
func slogLevel(k int) slog.Level {
	switch {
	case k >= kDbg:
		return slog.LevelDebug
	case k >= kNotice:
		return slog.LevelInfo
	case k == kWarn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

var kamLevelNames = map[string]int{
	"L_ALERT": kAlert, "L_BUG": kBug, "L_CRIT": kCrit, "L_ERR": kErr, "L_WARN": kWarn,
	"L_NOTICE": kNotice, "L_INFO": kInfo, "L_DBG": kDbg,
}

var kamLevelText = map[int]string{kAlert: "alert", kBug: "bug", kCrit2: "crit", kCrit: "crit", kErr: "err",
	kWarn: "warn", kNotice: "notice", kInfo: "info", kDbg: "dbg"}

// XLog is KSR.xlog: Kamailio's format strings ($ru, $(hdr(X)[1]), $(fu{uri.user})) printed through slog
// with module=xlog.
type XLog struct{ log *slog.Logger }

// Start keeps the module logger.
func (x *XLog) Start(env *engine.Env) error { x.log = env.Log; return nil }

func (x *XLog) logger() *slog.Logger {
	if x.log == nil {
		return slog.Default().With("module", "xlog")
	}
	return x.log
}

// Exports: every function returns 1, as Kamailio's (an unknown level name is logged at error, like
// Kamailio's fixup would refuse it).
func (x *XLog) Exports() []engine.Export {
	lvl := func(k int) func(*engine.Msg, string) int {
		return func(m *engine.Msg, f string) int { x.emit(m, k, f); return 1 }
	}
	return []engine.Export{
		{Name: "xlog", Fn: func(m *engine.Msg, level, f string) int {
			k, ok := kamLevelNames[strings.ToUpper(strings.TrimSpace(level))]
			if !ok {
				k = kErr
			}
			x.emit(m, k, f)
			return 1
		}},
		{Name: "xalert", Fn: lvl(kAlert)},
		{Name: "xcrit", Fn: lvl(kCrit)},
		{Name: "xerr", Fn: lvl(kErr)},
		{Name: "xwarn", Fn: lvl(kWarn)},
		{Name: "xnotice", Fn: lvl(kNotice)},
		{Name: "xinfo", Fn: lvl(kInfo)},
		{Name: "xdbg", Fn: lvl(kDbg)},
	}
}

// emit renders and logs; a level set for the message by kex.setdebug decides instead of the handler's.
func (x *XLog) emit(m *engine.Msg, k int, f string) {
	log := x.logger()
	sl := slogLevel(k)
	ctx := context.Background()
	override, has := debugOverride(m)
	if has {
		if k > override {
			return
		}
	} else if !log.Enabled(ctx, sl) {
		return
	}
	p := pvOf(m)
	text := f
	if p != nil {
		text = p.Render(m, f)
	}
	text = strings.TrimRight(text, "\r\n")
	rec := slog.NewRecord(time.Now(), sl, text, 0)
	rec.AddAttrs(slog.String("kamailio_level", kamLevelText[k]))
	_ = log.Handler().Handle(ctx, rec)
}

// pvOf returns the loaded pv module of the message's engine.
func pvOf(m *engine.Msg) *PV {
	if m == nil || m.E == nil {
		return nil
	}
	inst, ok := m.E.Module("pv")
	if !ok {
		return nil
	}
	p, _ := inst.(*PV)
	return p
}

const debugKey = "kex.debug"

func debugOverride(m *engine.Msg) (int, bool) {
	if m == nil {
		return 0, false
	}
	k, ok := m.ModState(debugKey).(int)
	return k, ok
}

// Kex is KSR.kex: setdebug/resetdebug. Kamailio changes the log level of the process handling the
// message and core resets it when the message is done; siplua keeps the level with the message, where
// xlog honours it (other modules keep the [core] log_level).
type Kex struct{}

// Exports: both return 1.
func (Kex) Exports() []engine.Export {
	return []engine.Export{
		{Name: "setdebug", Fn: func(m *engine.Msg, level int) int {
			if level < kAlert {
				level = kAlert
			}
			if level > kDbg {
				level = kDbg
			}
			m.SetModState(debugKey, level)
			return 1
		}},
		{Name: "resetdebug", Fn: func(m *engine.Msg) int {
			m.DelModState(debugKey)
			return 1
		}},
	}
}
