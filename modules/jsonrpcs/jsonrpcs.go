// Package jsonrpcs is the script side of Kamailio's jsonrpcs module: KSR.jsonrpcs.exec runs a JSON-RPC
// command (the same commands as `siplua ctl` and its control socket: core.*, stats.get, ul.dump,
// dispatcher.list ...) from a route, and $jsonrpl(code|text|body) and KSR.jsonrpcs.response() give its
// answer. The control socket itself is the [core] ctl_socket setting, not this module.
package jsonrpcs

import (
	"strings"
	"sync"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/ctl"
)

func init() {
	engine.Register(engine.Module{Name: "jsonrpcs", New: func() engine.Instance { return &JSONRPCS{} }})
}

// JSONRPCS has no parameters (Kamailio's are its fifo/dgram/http transports; siplua's control socket is
// [core] ctl_socket).
type JSONRPCS struct {
	e    *engine.Engine
	once sync.Once
	mux  *ctl.Server
}

// Start keeps the engine: the command table is built on the first exec, when every module has started.
func (j *JSONRPCS) Start(env *engine.Env) error {
	j.e = env.Engine
	return nil
}

// commands is the table exec runs: the built-in commands and those of the loaded modules, as the control
// socket has them, without core.reload and app_lua.reload (a route cannot replace the script it runs in:
// the reload would wait for the very worker that asked for it).
func (j *JSONRPCS) commands() *ctl.Server {
	j.once.Do(func() {
		mux := ctl.NewMux(nil)
		if j.e != nil {
			for _, c := range ctl.Builtin(mux, j.e, ctl.Options{Version: "(jsonrpcs)"}) {
				if !strings.HasSuffix(c.Name, ".reload") {
					mux.Register(c)
				}
			}
			mux.RegisterModules(j.e.Config().Mods)
		}
		j.mux = mux
	})
	return j.mux
}

// Exports: KSR.jsonrpcs.* with Kamailio 5.6's KEMI signatures.
func (j *JSONRPCS) Exports() []engine.Export {
	return []engine.Export{
		{Name: "exec", Fn: j.exec},
		{Name: "execx", Fn: j.execx},
		{Name: "response", Fn: response},
		{Name: "dispatch", Fn: dispatch},
	}
}

// PVs: $jsonrpl(code), $jsonrpl(text), $jsonrpl(body): the answer of the last exec of the message.
func (j *JSONRPCS) PVs() []engine.PV {
	return []engine.PV{{Name: "jsonrpl", Get: getJrpl}}
}

// exec is jsonrpc_exec(cmd): 1 when cmd is a JSON document (its answer, a result or an error, is kept for
// $jsonrpl and response()), -1 when it is not or is empty (as Kamailio, the previous answer is then kept).
// Kamailio keeps the last answer per process; siplua per message, so a route never sees the answer of
// another message's exec.
func (j *JSONRPCS) exec(m *engine.Msg, cmd string) int {
	if strings.TrimSpace(cmd) == "" {
		return -1
	}
	r, err := j.commands().Exec(cmd)
	if err != nil {
		return -1
	}
	m.SetModState("jsonrpcs", &r)
	return 1
}

// execx is jsonrpc_exec(cmd) too: Kamailio 5.6 exports the same function as exec and execx.
func (j *JSONRPCS) execx(m *engine.Msg, cmd string) int { return j.exec(m, cmd) }

// response is KSR.jsonrpcs.response(): the body of the last answer, "" before any exec (Kamailio's
// empty-string null).
func response(m *engine.Msg) string {
	if r := last(m); r != nil {
		return r.Body
	}
	return ""
}

// dispatch is jsonrpc_dispatch(): it answers a JSON-RPC request that came over HTTP (Kamailio's xhttp
// event route). siplua serves no HTTP on its SIP ports ([web] and [metrics] are separate servers), so
// there is never such a request: -1.
func dispatch(*engine.Msg) int { return -1 }

func last(m *engine.Msg) *ctl.Reply {
	r, _ := m.ModState("jsonrpcs").(*ctl.Reply)
	return r
}

// getJrpl is $jsonrpl(code|text|body): code is 0 before any exec (Kamailio's initial value), text and body
// null.
func getJrpl(m *engine.Msg, key string) engine.Value {
	r := last(m)
	switch key {
	case "code":
		if r == nil {
			return engine.IntVal(0)
		}
		return engine.IntVal(int64(r.Code))
	case "text":
		if r != nil {
			return engine.StrVal(r.Text)
		}
	case "body":
		if r != nil {
			return engine.StrVal(r.Body)
		}
	}
	return engine.Value{}
}
