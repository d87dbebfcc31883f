package ctl

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
)

// Options wire the built-in commands to what cmd owns.
type Options struct {
	Version string // "0.1.0"
	// Reload loads the configuration again and reloads the engine (core.reload). Nil: reload the current
	// configuration as it is in memory with the script read again.
	Reload func() (warnings []string, err error)
}

// ReloadResult is what core.reload answers.
type ReloadResult struct {
	Generation uint64   `json:"generation"`
	Warnings   []string `json:"warnings,omitempty"`
}

// WorkersResult is what core.workers answers.
type WorkersResult struct {
	Generation uint64 `json:"generation"`
	// GenerationsLive counts the script generations still open (older ones serve their transactions).
	GenerationsLive int                 `json:"generations_live"`
	Workers         int                 `json:"workers"`
	Busy            int                 `json:"busy"`
	Idle            int                 `json:"idle"`
	Queue           int                 `json:"queue"`
	QueueCapacity   int                 `json:"queue_capacity"`
	List            []engine.WorkerInfo `json:"list"`
}

// Builtin returns the core commands: core.version, core.uptime, core.reload (alias app_lua.reload),
// core.workers, stats.get, log.level and system.listMethods (s lists the methods).
func Builtin(s *Server, e *engine.Engine, o Options) []engine.Command {
	reload := o.Reload
	if reload == nil {
		reload = func() ([]string, error) { return e.Reload(e.Current()) }
	}
	doReload := func(args []string) (any, error) {
		if len(args) > 0 {
			return nil, &Error{Code: CodeInvalidParams, Message: "core.reload takes no arguments"}
		}
		ws, err := reload()
		if err != nil {
			return nil, &Error{Code: CodeFailed, Message: "reload failed, the running script keeps serving", Data: engine.ErrorLines(err)}
		}
		return ReloadResult{Generation: e.Generation(), Warnings: ws}, nil
	}
	return []engine.Command{
		{Name: "core.version", Help: "the siplua version", Fn: func([]string) (any, error) {
			return "siplua " + o.Version, nil
		}},
		{Name: "core.uptime", Help: "start time and seconds running", Fn: func([]string) (any, error) {
			now := time.Now()
			return map[string]any{"now": now.Format(time.RFC3339), "up_since": now.Add(-e.Uptime()).Format(time.RFC3339),
				"uptime": int64(e.Uptime().Seconds())}, nil
		}},
		{Name: "core.reload", Help: "reload configuration and script: a new generation, or nothing changes", Fn: doReload},
		{Name: "app_lua.reload", Help: "alias of core.reload (Kamailio's name)", Fn: doReload},
		{Name: "core.workers", Help: "workers busy/idle and their script generation, queue depth", Fn: func([]string) (any, error) {
			ws := e.Workers()
			r := WorkersResult{Generation: e.Generation(), GenerationsLive: e.LiveGenerations(), Workers: len(ws), List: ws}
			for _, w := range ws {
				if w.Busy {
					r.Busy++
				}
			}
			r.Idle = r.Workers - r.Busy
			r.Queue, r.QueueCapacity = e.QueueLen()
			return r, nil
		}},
		{Name: "stats.get", Help: "counters; arguments filter by name prefix (none or \"all\": every counter)", Fn: func(args []string) (any, error) {
			all := e.Stats().Snapshot()
			for _, g := range e.ModuleGauges() {
				all[g.Name] = uint64(max(0, g.Value()))
			}
			return filterStats(all, args), nil
		}},
		{Name: "log.level", Help: "show the log level, or set it: debug, info, warn, error", Fn: func(args []string) (any, error) {
			lv := e.LevelVar()
			if lv == nil {
				return nil, errors.New("the log level cannot be changed in this process")
			}
			switch len(args) {
			case 0:
			case 1:
				l, err := engine.ParseLogLevel(args[0])
				if err != nil {
					return nil, &Error{Code: CodeInvalidParams, Message: err.Error()}
				}
				lv.Set(l)
			default:
				return nil, &Error{Code: CodeInvalidParams, Message: "log.level takes at most one argument"}
			}
			return map[string]string{"level": LevelName(lv.Level())}, nil
		}},
		{Name: "system.listMethods", Help: "the commands this socket answers", Fn: func([]string) (any, error) {
			return s.Methods(), nil
		}},
	}
}

// LevelName names a slog level as the configuration does.
func LevelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}

func filterStats(all map[string]uint64, prefixes []string) map[string]uint64 {
	if len(prefixes) == 0 || (len(prefixes) == 1 && prefixes[0] == "all") {
		return all
	}
	out := map[string]uint64{}
	for k, v := range all {
		for _, p := range prefixes {
			if strings.HasPrefix(k, strings.TrimSuffix(p, ":")) {
				out[k] = v
			}
		}
	}
	return out
}
