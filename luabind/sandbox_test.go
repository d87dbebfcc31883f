package luabind_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// The sandbox leaves out what a routing script must not do (files, processes) and keeps the rest usable.
func TestSandbox(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
local missing = {}
for _, name in ipairs({"io", "dofile", "loadfile", "debug", "coroutine"}) do
	if _G[name] ~= nil then missing[#missing+1] = name end
end
for _, name in ipairs({"exit", "execute", "remove", "rename", "getenv", "tmpname"}) do
	if os[name] ~= nil then missing[#missing+1] = "os." .. name end
end
local present = (string.format ~= nil) and (table.concat ~= nil) and (math.floor ~= nil)
	and (os.time ~= nil) and (os.date ~= nil) and (os.clock ~= nil) and (load ~= nil)
local verdict = (#missing == 0 and present) and "sandboxed" or ("leaks:" .. table.concat(missing, ","))
function ksr_request_route()
	print("routing", KSR.is_REGISTER())
	KSR.sl.sl_send_reply(200, verdict)
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("REGISTER", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.Reason != "sandboxed" {
		t.Fatalf("got %q", r.Reason)
	}
	if !strings.Contains(p.Log.String(), `msg="routing\ttrue"`) || !strings.Contains(p.Log.String(), "script.lua:") {
		t.Errorf("print should log with the script position; log:\n%s", p.Log.String())
	}
}

// require loads Lua files from the script's directory; names leaving it are refused.
func TestRequire(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.sl]\n", map[string]string{
		"script.lua": `
local lib = require("lib.reasons")
local ok = pcall(require, "../etc/passwd")
function ksr_request_route()
	KSR.sl.sl_send_reply(200, lib.reason .. (ok and " escaped" or " contained"))
end`,
		"lib/reasons.lua": `return { reason = "from lib" }`,
	})
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.Reason != "from lib contained" {
		t.Fatalf("got %q", r.Reason)
	}
}

// A runtime error answers 500, logs file:line, and the worker serves the next request.
func TestRuntimeError(t *testing.T) {
	p := enginetest.Start(t, "[core]\nworkers = 1\n[modules.sl]\n", `
function ksr_request_route()
	if KSR.is_INVITE() then
		local t = nil
		return t.field
	end
	KSR.sl.sl_send_reply(200, "fine")
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("INVITE", "sip:bob@127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 500 || r.Reason != "Server Internal Error" {
		t.Fatalf("got %d %s", r.StatusCode, r.Reason)
	}
	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		t.Fatalf("after the error: got %d %s", r.StatusCode, r.Reason)
	}
	if !strings.Contains(p.Log.String(), "script.lua:5") {
		t.Errorf("log should name script.lua:5:\n%s", p.Log.String())
	}
}

// A KSR function called from the top-level code (no message yet) is a clear script error.
func TestKSROutsideRoute(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "script.lua"), []byte("local m = KSR.is_REGISTER()\nfunction ksr_request_route() end\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte("[lua]\nscript = \"script.lua\"\n"), 0o644)
	cfg, err := engine.LoadConfigFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = luabind.CompileScript(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "KSR.is_REGISTER needs a SIP message") || !strings.Contains(err.Error(), "script.lua:1") {
		t.Fatalf("got %v", err)
	}
}
