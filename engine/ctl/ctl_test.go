package ctl_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// ctltest is a module offering a control command, as ul or dispatcher will.
type ctltest struct{}

func (ctltest) Exports() []engine.Export { return nil }
func (ctltest) RPC() []engine.Command {
	return []engine.Command{{Name: "ctltest.echo", Fn: func(args []string) (any, error) {
		if len(args) == 0 {
			return nil, errors.New("nothing to echo")
		}
		return strings.Join(args, "|"), nil
	}}}
}

func init() {
	engine.Register(engine.Module{Name: "ctltest", New: func() engine.Instance { return ctltest{} }})
}

const script = `function ksr_request_route() KSR.sl.sl_send_reply(200, "ok") end`

// sockPath is short: unix socket paths are limited to ~104 bytes and t.TempDir() can exceed that.
func sockPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

func startCtl(t *testing.T) (*enginetest.Proxy, *ctl.Server) {
	t.Helper()
	p := enginetest.StartChecked(t, "[core]\nworkers = 2\n[modules.sl]\n[modules.ctltest]\n", script)
	var lv slog.LevelVar
	p.E.SetLevelVar(&lv)
	s, err := ctl.Listen(sockPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Register(ctl.Builtin(s, p.E, ctl.Options{Version: "test"})...)
	s.RegisterModules(p.E.Config().Mods)
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return p, s
}

func TestProtocol(t *testing.T) {
	_, s := startCtl(t)
	for _, tc := range []struct{ name, req, want string }{
		{"version", `{"jsonrpc":"2.0","method":"core.version","id":1}`, `{"jsonrpc":"2.0","result":"siplua test","id":1}`},
		{"string id", `{"jsonrpc":"2.0","method":"core.version","id":"a"}`, `{"jsonrpc":"2.0","result":"siplua test","id":"a"}`},
		{"module command", `{"jsonrpc":"2.0","method":"ctltest.echo","params":["a",5,true],"id":2}`, `{"jsonrpc":"2.0","result":"a|5|true","id":2}`},
		{"command error", `{"jsonrpc":"2.0","method":"ctltest.echo","id":3}`, `{"jsonrpc":"2.0","error":{"code":500,"message":"nothing to echo"},"id":3}`},
		{"not found", `{"jsonrpc":"2.0","method":"nope","id":4}`, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found: nope (system.listMethods lists them)"},"id":4}`},
		{"named params", `{"jsonrpc":"2.0","method":"core.version","params":{"a":1},"id":5}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params: params must be an array of positional arguments"},"id":5}`},
		{"nested param", `{"jsonrpc":"2.0","method":"core.version","params":[[1]],"id":6}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params: argument 1: expected a string, number or boolean"},"id":6}`},
		{"not 2.0", `{"method":"core.version","id":7}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request: expected {\"jsonrpc\": \"2.0\", \"method\": ..., \"id\": ...}"},"id":null}`},
		{"bad level", `{"jsonrpc":"2.0","method":"log.level","params":["loud"],"id":8}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"unknown log level \"loud\" (expected debug, info, warn or error)"},"id":8}`},
		{"set level", `{"jsonrpc":"2.0","method":"log.level","params":["debug"],"id":9}`, `{"jsonrpc":"2.0","result":{"level":"debug"},"id":9}`},
		{"reload args", `{"jsonrpc":"2.0","method":"core.reload","params":["x"],"id":10}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"core.reload takes no arguments"},"id":10}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := roundTrip(t, s.Path(), tc.req); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func roundTrip(t *testing.T, path string, lines ...string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(line)
}

// A notification (no id) gets no answer; the next request on the connection does.
func TestNotificationAndGarbage(t *testing.T) {
	_, s := startCtl(t)
	got := roundTrip(t, s.Path(), `{"jsonrpc":"2.0","method":"log.level","params":["warn"]}`, `{"jsonrpc":"2.0","method":"log.level","id":1}`)
	if got != `{"jsonrpc":"2.0","result":{"level":"warn"},"id":1}` {
		t.Fatalf("got %s", got)
	}
	got = roundTrip(t, s.Path(), `{not json`)
	if !strings.HasPrefix(got, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error: `) {
		t.Fatalf("got %s", got)
	}
}

func TestCommands(t *testing.T) {
	p, s := startCtl(t)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	c.RecvResponse(2 * time.Second)

	var w ctl.WorkersResult
	call(t, s.Path(), "core.workers", &w)
	if w.Generation != 1 || w.Workers != 2 || w.Busy+w.Idle != 2 || len(w.List) != 2 || w.QueueCapacity != 4096 {
		t.Fatalf("core.workers: %+v", w)
	}
	var st map[string]uint64
	call(t, s.Path(), "stats.get", &st, "requests_received_options", "replies_sent_local_2xx")
	if len(st) != 2 || st["requests_received_options"] != 1 || st["replies_sent_local_2xx"] != 1 {
		t.Fatalf("stats.get: %v", st)
	}
	var r ctl.ReloadResult
	call(t, s.Path(), "app_lua.reload", &r)
	if r.Generation != 2 {
		t.Fatalf("reload: %+v", r)
	}
	var up map[string]any
	call(t, s.Path(), "core.uptime", &up)
	if _, ok := up["uptime"].(float64); !ok {
		t.Fatalf("core.uptime: %v", up)
	}
	var methods []string
	call(t, s.Path(), "system.listMethods", &methods)
	if strings.Join(methods, " ") != "app_lua.reload core.reload core.uptime core.version core.workers ctltest.echo log.level stats.get system.listMethods" {
		t.Fatalf("methods: %v", methods)
	}

	// a failed reload: the problems come back one per line in data
	p.WriteFile(t, "script.lua", "function ksr_request_route()\n  KSR.sl.nope()\nend\n")
	_, _, err := ctl.Call(s.Path(), "core.reload", nil, 5*time.Second)
	var ce *ctl.Error
	if !errors.As(err, &ce) || ce.Code != ctl.CodeFailed || len(ce.Lines()) != 1 ||
		!strings.HasSuffix(ce.Lines()[0], "script.lua:2: unknown function KSR.sl.nope: module sl has no function \"nope\"") {
		t.Fatalf("failed reload: %#v", err)
	}
}

func call(t *testing.T, path, method string, into any, args ...string) {
	t.Helper()
	_, res, err := ctl.Call(path, method, args, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if err := json.Unmarshal(res, into); err != nil {
		t.Fatalf("%s: %v in %s", method, err, res)
	}
}

func TestSocketFile(t *testing.T) {
	path := sockPath(t)
	// a stale socket (nobody listening) is replaced
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	s, err := ctl.Listen(path, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	go s.Serve()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %o, want 600", perm)
	}
	// a live socket is not taken over
	if _, err := ctl.Listen(path, nil); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("second listener: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	if _, _, err := ctl.Call(path, "core.version", nil, time.Second); !errors.Is(err, ctl.ErrNotListening) {
		t.Fatalf("call after close: %v", err)
	}
	// a regular file in the way is an error, not deleted
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Listen(path, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
}
