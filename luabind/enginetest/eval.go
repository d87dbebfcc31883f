package enginetest

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

// EvalScript is a routing script for KSR tests: it evaluates the Lua expression of each X-Eval header in
// order and answers 200 with one "X-Result: type:value" header per expression ("error:msg" when it raised),
// so a test sees the exact Lua types and values over the wire. CR and LF in values are escaped as \r \n.
const EvalScript = `
local function enc(s)
	return (string.gsub(string.gsub(s, "\r", "\\r"), "\n", "\\n"))
end
function ksr_request_route()
	local i = 0
	while true do
		local e = KSR.hdr.get_idx("X-Eval", i)
		if e == nil then break end
		local f, cerr = loadstring("return " .. e)
		local res
		if f == nil then
			res = "error:" .. tostring(cerr)
		else
			local ok, v = pcall(f)
			if ok then res = type(v) .. ":" .. tostring(v) else res = "error:" .. tostring(v) end
		end
		KSR.hdr.append_to_reply("X-Result: " .. enc(res) .. "\r\n")
		i = i + 1
	end
	KSR.sl.sl_send_reply(200, "OK")
end
`

// AllModulesConfig is a configuration that loads every registered module with its defaults.
func AllModulesConfig() string {
	var b strings.Builder
	for _, name := range engine.RegisteredModules() {
		if m, _ := engine.LookupModule(name); !m.Builtin {
			b.WriteString("[modules." + name + "]\n")
		}
	}
	return b.String()
}

// Eval sends a request with one X-Eval header per expression (after the extra headers) to a proxy running
// EvalScript and returns the X-Result values in order.
func (c *Client) Eval(method, ruri string, extra []string, exprs ...string) []string {
	c.t.Helper()
	hdrs := append([]string{}, extra...)
	for _, e := range exprs {
		hdrs = append(hdrs, "X-Eval: "+e)
	}
	c.Send(c.Request(method, ruri, hdrs...))
	raw := string(c.RecvRaw(3 * time.Second))
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(l, "X-Result: "); ok {
			out = append(out, v)
		}
	}
	if len(out) != len(exprs) {
		c.t.Fatalf("eval: %d results for %d expressions:\n%s", len(out), len(exprs), raw)
	}
	return out
}

// Export returns the function of a loaded module's export (for unit tests that call it directly).
func (p *Proxy) Export(t testing.TB, module, name string) any {
	t.Helper()
	inst, ok := p.E.Module(module)
	if !ok {
		t.Fatalf("module %s is not loaded", module)
	}
	for _, ex := range inst.Exports() {
		if ex.Name == name {
			return ex.Fn
		}
	}
	t.Fatalf("module %s has no export %s", module, name)
	return nil
}

// Call calls a module export with m and args through reflection and renders the result as EvalScript
// does ("string:x", "number:1", "boolean:true", "nil:nil"; "" for no result), so unit tables and Lua-level
// tables read alike.
func Call(t testing.TB, fn any, m *engine.Msg, args ...any) string {
	t.Helper()
	fv := reflect.ValueOf(fn)
	if fv.Kind() != reflect.Func || fv.Type().NumIn() != len(args)+1 {
		t.Fatalf("Call: %T does not take a message and %d arguments", fn, len(args))
	}
	in := []reflect.Value{reflect.ValueOf(m)}
	for _, a := range args {
		in = append(in, reflect.ValueOf(a))
	}
	out := fv.Call(in)
	switch len(out) {
	case 0:
		return ""
	case 2:
		if !out[1].Bool() {
			return "nil:nil"
		}
		return "string:" + out[0].String()
	}
	switch v := out[0].Interface().(type) {
	case string:
		return "string:" + v
	case int:
		return "number:" + strconv.Itoa(v)
	case bool:
		return "boolean:" + strconv.FormatBool(v)
	case engine.Value:
		switch v.Kind {
		case engine.Str:
			return "string:" + v.S
		case engine.Int:
			return "number:" + strconv.FormatInt(v.I, 10)
		}
		return "nil:nil"
	}
	t.Fatalf("Call: unexpected result type %T", out[0].Interface())
	return ""
}
