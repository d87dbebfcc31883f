package engine_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const reloadConfig = "[core]\nworkers = 3\n[modules.sl]\n"

// answering is a script that answers every request with 200 and the given reason.
func answering(reason string) string {
	return `
function ksr_request_route()
	KSR.sl.sl_send_reply(200, "` + reason + `")
end
`
}

func expectReason(t *testing.T, c *enginetest.Client, want string) {
	t.Helper()
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	r := c.RecvResponse(2 * time.Second)
	if r.StatusCode != 200 || r.Reason != want {
		t.Fatalf("got %d %q, want 200 %q", r.StatusCode, r.Reason, want)
	}
}

func TestReloadSwapsGeneration(t *testing.T) {
	p := enginetest.StartChecked(t, reloadConfig, answering("one"))
	c := p.UDPClient(t)
	expectReason(t, c, "one")
	p.WriteFile(t, "script.lua", answering("two"))
	ws, err := p.Reload()
	if err != nil || len(ws) > 0 {
		t.Fatalf("reload: warnings %q, err %v", ws, err)
	}
	if g := p.E.Generation(); g != 2 {
		t.Fatalf("generation %d, want 2", g)
	}
	expectReason(t, c, "two")
	if ok, failed := p.E.Stats().Reloads(); ok != 1 || failed != 0 {
		t.Fatalf("reloads ok=%d failed=%d", ok, failed)
	}
}

// Idle workers are woken to take the new generation and close their old state without waiting for traffic.
func TestReloadWakesIdleWorkers(t *testing.T) {
	p := enginetest.StartChecked(t, reloadConfig, answering("one"))
	for range 3 {
		if _, err := p.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		all := true
		for _, w := range p.E.Workers() {
			all = all && w.Generation == 4
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers did not move to generation 4: %+v", p.E.Workers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.Log.String(), "script generation drained") {
		t.Fatalf("no generation reported drained:\n%s", p.Log.String())
	}
}

func TestReloadRejected(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		want                []string // each in the error
	}{
		{"syntax error", "script.lua", "function ksr_request_route()\n  KSR.sl.sl_send_reply(200, \"x\"\n", []string{"script.lua:3: "}},
		{"unknown KSR function", "script.lua", "function ksr_request_route()\n\n  KSR.sl.no_such(1)\nend\n",
			[]string{"script.lua:3: unknown function KSR.sl.no_such"}},
		{"module not loaded", "script.lua", "function ksr_request_route()\n  KSR.maxfwd.process_maxfwd(10)\nend\n",
			[]string{"script.lua:2: KSR.maxfwd.process_maxfwd is from module maxfwd"}},
		{"top-level error", "script.lua", "local x = nil\nx.y = 1\nfunction ksr_request_route() end\n", []string{"script.lua:2: "}},
		{"no request route", "script.lua", "function ksr_reply_route() end\n", []string{"ksr_request_route is not defined"}},
		{"unknown config key", "config.toml", "[lua]\nscript = \"script.lua\"\n[core]\nworkers = 3\nbogus = 1\n[modules.sl]\n",
			[]string{"config.toml:5: unknown key \"core.bogus\""}},
		{"several problems", "script.lua", "function ksr_request_route()\n  KSR.sl.nope1()\n  KSR.sl.nope2()\nend\n",
			[]string{"script.lua:2: unknown function KSR.sl.nope1", "script.lua:3: unknown function KSR.sl.nope2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := enginetest.StartChecked(t, reloadConfig, answering("old"))
			c := p.UDPClient(t)
			cur := p.E.Current()
			p.WriteFile(t, tc.file, tc.content)
			ws, err := p.Reload()
			if err == nil {
				t.Fatalf("reload accepted (warnings %q)", ws)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if g := p.E.Generation(); g != 1 {
				t.Errorf("generation %d after a failed reload, want 1", g)
			}
			if p.E.Current() != cur {
				t.Errorf("configuration replaced by a rejected reload")
			}
			if _, failed := p.E.Stats().Reloads(); failed != 1 {
				t.Errorf("reloads failed = %d, want 1", failed)
			}
			expectReason(t, c, "old")
		})
	}
}

func TestReloadWarnings(t *testing.T) {
	base := "[lua]\nscript = \"script.lua\"\n"
	for _, tc := range []struct {
		name, config, script string
		warn                 []string // expected warnings, in order
		fail                 string   // expected in the error instead
	}{
		{"nothing changed", base + reloadConfig, "", nil, ""},
		{"log level is live", base + "[core]\nworkers = 3\nlog_level = \"debug\"\n[modules.sl]\n", "", nil, ""},
		{"restart keys", base + "[core]\nworkers = 4\nqueue = 10\n[ctl]\nenabled = false\n[metrics]\nlisten = \"127.0.0.1:9999\"\n[modules.sl]\n", "",
			[]string{"core.queue changed: it takes effect on restart", "core.workers changed: it takes effect on restart",
				"ctl.enabled changed: it takes effect on restart", "metrics.listen changed: it takes effect on restart"}, ""},
		{"module added", base + reloadConfig + "[modules.maxfwd]\n", "",
			[]string{"[modules.maxfwd] was added: a module is loaded only at start, restart siplua to use it"}, ""},
		{"module added and used", base + reloadConfig + "[modules.maxfwd]\n",
			"function ksr_request_route()\n  KSR.maxfwd.process_maxfwd(10)\n  KSR.sl.sl_send_reply(200, \"new\")\nend\n",
			nil, "config.toml:6: [modules.maxfwd] was added after start"},
		{"module removed", base + "[core]\nworkers = 3\n[modules.sl]\n[modules.corex]\n", "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := reloadConfig
			if tc.name == "module removed" {
				start = "[core]\nworkers = 3\n[modules.sl]\n[modules.corex]\n[modules.siputils]\n"
				tc.warn = []string{"[modules.siputils] was removed: the module stays loaded until restart, the script may no longer use it"}
			}
			p := enginetest.StartChecked(t, start, answering("old"))
			p.WriteFile(t, "config.toml", tc.config)
			if tc.script != "" {
				p.WriteFile(t, "script.lua", tc.script)
			}
			ws, err := p.Reload()
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("err %v, want %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(ws, "\n") != strings.Join(tc.warn, "\n") {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(ws, "\n"), strings.Join(tc.warn, "\n"))
			}
		})
	}
}

func TestReloadLogLevelLive(t *testing.T) {
	p := enginetest.StartChecked(t, reloadConfig, answering("x"))
	var lv slog.LevelVar
	p.E.SetLevelVar(&lv)
	p.WriteFile(t, "config.toml", "[lua]\nscript = \"script.lua\"\n[core]\nworkers = 3\nlog_level = \"error\"\n[modules.sl]\n")
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := lv.Level().String(); got != "ERROR" {
		t.Fatalf("level %s after reload, want ERROR", got)
	}
}

// A script that requires a file picks up the file's new content on reload.
func TestReloadRequiredFile(t *testing.T) {
	p := enginetest.StartChecked(t, reloadConfig, answering("start"))
	p.WriteFile(t, "lib.lua", `return {reason = "lib one"}`)
	p.WriteFile(t, "script.lua", `
local lib = require("lib")
function ksr_request_route() KSR.sl.sl_send_reply(200, lib.reason) end
`)
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	c := p.UDPClient(t)
	expectReason(t, c, "lib one")
	p.WriteFile(t, "lib.lua", `return {reason = "lib two"}`)
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	expectReason(t, c, "lib two")
	if files := p.E.ScriptFiles(); len(files) != 2 || !strings.HasSuffix(files[1], "lib.lua") {
		t.Fatalf("script files %q", files)
	}
}

// reloadtest is a module with one parameter it applies live and one that needs a restart.
type reloadtest struct {
	Live    string `toml:"live" reload:"live"`
	Fixed   string `toml:"fixed"`
	applied []string
}

func (*reloadtest) Exports() []engine.Export { return nil }

func (r *reloadtest) Reload(next engine.Instance) error {
	n := next.(*reloadtest)
	if n.Live == "refuse" {
		return errors.New("cannot apply \"refuse\"")
	}
	r.Live = n.Live
	r.applied = append(r.applied, n.Live)
	return nil
}

func init() {
	engine.Register(engine.Module{Name: "reloadtest", New: func() engine.Instance { return &reloadtest{Live: "a", Fixed: "x"} }})
}

func TestReloadModuleParams(t *testing.T) {
	p := enginetest.StartChecked(t, reloadConfig+"[modules.reloadtest]\n", answering("x"))
	inst, _ := p.E.Module("reloadtest")
	mod := inst.(*reloadtest)
	conf := func(params string) string {
		return "[lua]\nscript = \"script.lua\"\n" + reloadConfig + "[modules.reloadtest]\n" + params
	}
	for _, tc := range []struct {
		name, params string
		warn, fail   string
		applied      string // mod.applied after the step
	}{
		{"unchanged", "", "", "", ""},
		{"live param", "live = \"b\"\n", "", "", "b"},
		{"restart param", "live = \"b\"\nfixed = \"y\"\n", "modules.reloadtest.fixed changed: it takes effect on restart", "", "b"},
		{"both", "live = \"c\"\nfixed = \"y\"\n", "modules.reloadtest.fixed changed: it takes effect on restart", "", "b c"},
		{"hook refuses", "live = \"refuse\"\n", "", "config.toml:6: [modules.reloadtest]: reload: cannot apply \"refuse\"", "b c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.WriteFile(t, "config.toml", conf(tc.params))
			gen, cur := p.E.Generation(), p.E.Current()
			if tc.fail != "" {
				// the refused reload also brings a new script: it must not serve
				p.WriteFile(t, "script.lua", answering("refused"))
				defer p.WriteFile(t, "script.lua", answering("x"))
			}
			ws, err := p.Reload()
			switch {
			case tc.fail != "":
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("err %v, want %q", err, tc.fail)
				}
				if g := p.E.Generation(); g != gen {
					t.Errorf("generation %d after the refused reload, want %d", g, gen)
				}
				if p.E.Current() != cur {
					t.Errorf("configuration replaced by a refused reload")
				}
				expectReason(t, p.UDPClient(t), "x")
			case err != nil:
				t.Fatal(err)
			case strings.Join(ws, "\n") != tc.warn:
				t.Fatalf("warnings %q, want %q", ws, tc.warn)
			}
			if got := strings.Join(mod.applied, " "); got != tc.applied {
				t.Fatalf("applied %q, want %q", got, tc.applied)
			}
		})
	}
}
