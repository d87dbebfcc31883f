package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/engine/metrics"
	"github.com/siplua/siplua/engine/watch"
	"github.com/siplua/siplua/engine/web"
)

// reloader wires the reload triggers — ctl core.reload, SIGHUP, and file watching when [lua] watch is on —
// to one function that reads the configuration file again and reloads the engine.
type reloader struct {
	e       *engine.Engine
	cfgPath string   // "" = the embedded configuration
	listen  []string // -l: replaces [core] listen in every configuration loaded
	log     *slog.Logger

	mu      sync.Mutex
	watcher *watch.Watcher
}

func (r *reloader) reload() ([]string, error) {
	ws, err := r.e.ReloadFrom(func() (*engine.Config, error) { return loadConfig(r.cfgPath, r.listen) })
	r.updateWatch()
	return ws, err
}

// updateWatch follows [lua] watch of the running configuration, and the files its script now requires.
func (r *reloader) updateWatch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := r.e.Current()
	if !cfg.Lua.Watch || cfg.FS != nil {
		if cfg.Lua.Watch {
			r.log.Warn("[lua] watch: the embedded configuration has no files to watch")
		}
		if w := r.watcher; w != nil {
			r.watcher = nil
			go w.Close() // not inline: this may run in the watcher's own callback
		}
		return
	}
	if r.watcher == nil {
		w, err := watch.New(func() {
			r.log.Info("files changed: reloading")
			_, _ = r.reload() // ReloadFrom logs the outcome
		}, watch.Debounce, r.log)
		if err != nil {
			r.log.Error("file watch unavailable", "err", err)
			return
		}
		w.MatchExt(".lua")
		r.watcher = w
	}
	files := append([]string{cfg.File}, r.e.ScriptFiles()...)
	if err := r.watcher.Set(files); err != nil {
		r.log.Error("file watch", "err", err)
	}
}

func (r *reloader) close() {
	r.mu.Lock()
	w := r.watcher
	r.watcher = nil
	r.mu.Unlock()
	if w != nil {
		_ = w.Close()
	}
}

// onSIGHUP reloads on each SIGHUP until ctx ends.
func (r *reloader) onSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				r.log.Info("SIGHUP: reloading")
				_, _ = r.reload()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// startControl opens the control socket (a failure is logged: the proxy serves without it), the metrics
// endpoint and the web status page (a failure stops startup: they were asked for explicitly). The returned
// func closes them.
func startControl(e *engine.Engine, cfg *engine.Config, r *reloader, log *slog.Logger) (func(), error) {
	var closers []func()
	stop := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if cfg.Ctl.Enabled {
		s, err := ctl.Listen(cfg.CtlSocket(), log)
		if err != nil {
			log.Error("control socket unavailable, siplua ctl will not reach this process", "module", "ctl", "err", err)
		} else {
			s.Register(ctl.Builtin(s, e, ctl.Options{Version: Version, Reload: r.reload})...)
			s.RegisterModules(cfg.Mods)
			go s.Serve()
			closers = append(closers, func() { _ = s.Close() })
			log.Info("control socket", "module", "ctl", "path", s.Path())
		}
	}
	if cfg.Metrics.Listen != "" {
		m, err := metrics.Listen(cfg.Metrics.Listen, e, Version, cfg.Metrics.Pprof, log)
		if err != nil {
			stop()
			return nil, err
		}
		go m.Serve()
		closers = append(closers, func() { _ = m.Close() })
		log.Info("metrics", "module", "metrics", "url", "http://"+m.Addr().String()+"/metrics", "pprof", cfg.Metrics.Pprof)
	}
	if cfg.Web.Listen != "" {
		w, err := web.Listen(e, web.Options{Version: Version, Config: cfg.Web, Reload: r.reload,
			Commands: web.ModuleCommands(cfg.Mods), Log: log})
		if err != nil {
			stop()
			return nil, err
		}
		go w.Serve()
		closers = append(closers, func() { _ = w.Close() })
		log.Info("web status page", "module", "web", "url", "http://"+w.Addr().String()+"/", "actions", cfg.Web.AllowActions)
	}
	return stop, nil
}
