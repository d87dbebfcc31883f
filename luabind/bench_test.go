package luabind_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	lua "github.com/yuin/gopher-lua"
)

// BenchmarkLuaCall measures what the route_timeout budget costs the VM: a call of a Lua function that runs
// ~400 instructions, without a context and with one that is polled before each instruction (what a worker's
// budget does; context.WithCancel's Done is a channel like the budget's).
func BenchmarkLuaCall(b *testing.B) {
	dir := b.TempDir()
	for name, text := range map[string]string{"c.toml": "[lua]\nscript = \"s.lua\"\n",
		"s.lua": "function work() local s = 0 for i = 1, 100 do s = s + i end return s end\nfunction ksr_request_route() end"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := engine.LoadConfigFile(filepath.Join(dir, "c.toml"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := luabind.CompileScript(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
	}{
		{"plain", nil},
		{"withcancel", func() context.Context { return context.Background() }},
		{"budget", func() context.Context { return &budgetCtx{Context: context.Background()} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			est, err := s.NewState(0)
			if err != nil {
				b.Fatal(err)
			}
			defer est.Close()
			L := est.(*luabind.State).L
			if tc.ctx != nil {
				ctx, cancel := context.WithCancel(tc.ctx())
				defer cancel()
				if c, ok := tc.ctx().(*budgetCtx); ok {
					L.SetContext(c)
				} else {
					L.SetContext(ctx)
				}
			}
			fn := L.GetGlobal("work")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}); err != nil {
					b.Fatal(err)
				}
				L.Pop(1)
			}
		})
	}
}

// budgetCtx is shaped like the engine's worker budget: Done is an atomic load that gives a nil channel
// until the route is cancelled.
type budgetCtx struct {
	context.Context
	done atomic.Pointer[chan struct{}]
}

func (c *budgetCtx) Done() <-chan struct{} {
	if p := c.done.Load(); p != nil {
		return *p
	}
	return nil
}

// BenchmarkScanNames is the static check of a script (name scan and lints on its syntax tree), which -c and
// every reload run: the registrar example with its modules loaded.
func BenchmarkScanNames(b *testing.B) {
	cfg, err := engine.LoadConfigFile("../scripts/examples/registrar.toml")
	if err != nil {
		b.Fatal(err)
	}
	src, err := cfg.ReadFile(cfg.Lua.Script)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs := luabind.ScanNames("registrar.lua", src, cfg.Mods); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
