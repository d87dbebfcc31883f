package config

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/siplua/siplua/engine/transport"
)

// cfgtestParams is a module with one parameter of each kind, registered for these tests only.
type cfgtestParams struct {
	Limit   int           `toml:"limit"`
	Name    string        `toml:"name"`
	Hosts   []string      `toml:"hosts"`
	Timeout time.Duration `toml:"timeout"`
}

func (p *cfgtestParams) Exports() []Export { return nil }

func (p *cfgtestParams) Validate() error {
	if p.Limit > 100 {
		return errors.New("limit: expected at most 100")
	}
	return nil
}

func init() {
	Register(Module{Name: "cfgtest", New: func() Instance { return &cfgtestParams{Limit: 10} }})
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(nil, "empty.toml", "/etc/siplua")
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultCore(); !slices.Equal(c.Core.Listen, d.Listen) || c.Core.Queue != 4096 || c.Core.ServerHeader != "siplua" ||
		c.Core.LogLevel != "info" || c.Core.LogFormat != "text" || c.Core.UDPReadSize != 65535 {
		t.Errorf("core defaults: %+v", c.Core)
	}
	if c.Lua.RouteTimeout != 100 || c.Lua.RouteBudget() != 100*time.Millisecond {
		t.Errorf("route_timeout %d", c.Lua.RouteTimeout)
	}
	if c.Lua.Script != "scripts/default.lua" || c.ScriptPath() != "/etc/siplua/scripts/default.lua" {
		t.Errorf("script %q at %q", c.Lua.Script, c.ScriptPath())
	}
	want := []ListenAddr{{transport.UDP, netip.MustParseAddrPort("127.0.0.1:5060")}, {transport.TCP, netip.MustParseAddrPort("127.0.0.1:5060")}}
	if !slices.Equal(c.Listen, want) {
		t.Errorf("listen %v, want %v", c.Listen, want)
	}
	if _, ok := c.Mods.Get("cfgtest"); ok {
		t.Error("a module without a [modules.NAME] table is loaded")
	}
	if c.WorkerCount() < 2 {
		t.Errorf("default workers %d", c.WorkerCount())
	}
}

func TestParseConfigValues(t *testing.T) {
	src := `
[core]
listen = ["udp:[::1]:5062", "tcp:0.0.0.0:5060"]
advertise = "sip.example.com:5070"
workers = 3
log_format = "json"

[lua]
script = "/abs/route.lua"

[modules.cfgtest]
limit = 20
name = "x"
hosts = ["a", "b"]
timeout = "1500ms"
`
	c, err := ParseConfig([]byte(src), "c.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerCount() != 3 || c.Core.LogFormat != "json" || c.ScriptPath() != "/abs/route.lua" {
		t.Errorf("core %+v script %q", c.Core, c.ScriptPath())
	}
	if c.Listen[0].String() != "udp:[::1]:5062" || c.Listen[1].String() != "tcp:0.0.0.0:5060" {
		t.Errorf("listen %v", c.Listen)
	}
	inst, ok := c.Mods.Get("cfgtest")
	if !ok {
		t.Fatal("cfgtest not loaded")
	}
	p := inst.(*cfgtestParams)
	if p.Limit != 20 || p.Name != "x" || !slices.Equal(p.Hosts, []string{"a", "b"}) || p.Timeout != 1500*time.Millisecond {
		t.Errorf("params %+v", p)
	}
	if c.KeyLine("core", "workers") != 5 || c.KeyLine("modules", "cfgtest", "timeout") != 15 || c.KeyLine("core", "queue") != 0 {
		t.Errorf("KeyLine: %d %d %d", c.KeyLine("core", "workers"), c.KeyLine("modules", "cfgtest", "timeout"), c.KeyLine("core", "queue"))
	}
}

// TestParseConfigErrors checks that every problem is reported, each with its line and what was expected.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown key", "[core]\nlistn = []\n",
			[]string{`c.toml:2: unknown key "core.listn" (did you mean "listen"?); [core] keys are: advertise, `}},
		{"wrong types all reported", "[core]\nworkers = \"two\"\nqueue = true\nlisten = \"udp:1.2.3.4:5\"\n",
			[]string{`c.toml:2: core.workers: expected an integer, got a string ("two")`,
				`c.toml:3: core.queue: expected an integer, got a boolean (true)`,
				`c.toml:4: core.listen: expected an array of strings, got a string ("udp:1.2.3.4:5")`}},
		{"bad values", "[core]\nlisten = [\"xyz\"]\nlog_level = \"loud\"\nqueue = 0\n",
			[]string{`c.toml:2: core.listen: "xyz": expected proto:host:port`,
				`c.toml:3: core.log_level: unknown log level "loud" (expected debug, info, warn or error)`,
				`c.toml:4: core.queue: expected 1 or more messages, got 0`}},
		{"empty listen", "[core]\nlisten = []\n", []string{`c.toml:2: core.listen: expected at least one address`}},
		{"syntax", "[core]\nworkers = \n", []string{`c.toml:2: TOML syntax error: `}},
		{"unknown module", "[modules.cfgtst]\n", []string{`c.toml:1: unknown module "cfgtst" (did you mean "cfgtest"?); the modules are: `}},
		{"module params", "[modules.cfgtest]\nlimit = \"x\"\nnme = \"a\"\ntimeout = \"soon\"\n",
			[]string{`c.toml:2: modules.cfgtest.limit: expected an integer, got a string ("x")`,
				`c.toml:3: unknown key "modules.cfgtest.nme" (did you mean "name"?); [modules.cfgtest] keys are: hosts, limit, name, timeout`,
				`c.toml:4: modules.cfgtest.timeout: `}},
		{"module validate", "\n[modules.cfgtest]\nlimit = 1000\n", []string{`c.toml:2: [modules.cfgtest]: limit: expected at most 100`}},
		{"module not a table", "[modules]\ncfgtest = 5\n", []string{`c.toml:2: modules.cfgtest: expected a table, got an integer (5)`}},
		{"unknown table", "[cor]\nx = 1\n", []string{`c.toml:1: unknown table [cor] (did you mean [core]?)`}},
		{"top-level key", "workers = 2\n", []string{`c.toml:1: unknown key "workers" at the top level`}},
		{"core not a table", "core = 1\n", []string{`c.toml:1: core: expected a table, got an integer (1)`}},
		{"empty script", "[lua]\nscript = \"\"\n", []string{`c.toml:2: lua.script: expected the path of the routing script`}},
		{"route_timeout 0", "[lua]\nroute_timeout = 0\n", []string{`c.toml:2: lua.route_timeout: expected 1..60000 milliseconds, got 0`}},
		{"route_timeout too long", "[lua]\nroute_timeout = 60001\n", []string{`c.toml:2: lua.route_timeout: expected 1..60000 milliseconds, got 60001`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.src), "c.toml", "/d")
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			var es Errors
			if errors.As(err, &es) {
				// one line per problem
			} else {
				es = Errors{err}
			}
			if len(es) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(es), len(tt.want), err)
			}
			for i, e := range es {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, e, tt.want[i])
				}
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "udp:127.0.0.1:5060", want: "udp:127.0.0.1:5060"},
		{in: "TCP:10.0.0.1:5070", want: "tcp:10.0.0.1:5070"},
		{in: "udp:[::1]:5060", want: "udp:[::1]:5060"},
		{in: "tcp:[2001:db8::1]:5080", want: "tcp:[2001:db8::1]:5080"},
		{in: "xyz", err: "expected proto:host:port"},
		{in: "sctp:127.0.0.1:5060", err: `unknown protocol "sctp"`},
		{in: "udp:localhost:5060", err: "host names are not allowed"},
		{in: "udp:127.0.0.1", err: "expected an IP address and port"},
		{in: "udp:::1:5060", err: "expected an IP address and port"},
	}
	for _, tt := range tests {
		la, err := ParseListen(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseListen(%q): err %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || la.String() != tt.want):
			t.Errorf("ParseListen(%q) = %v, %v; want %s", tt.in, la, err, tt.want)
		}
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"example.com", "example.com", 0, true},
		{"example.com:5070", "example.com", 5070, true},
		{"10.0.0.1:5060", "10.0.0.1", 5060, true},
		{"[::1]", "[::1]", 0, true},
		{"[::1]:5062", "[::1]", 5062, true},
		{"", "", 0, false},
		{"[::1", "", 0, false},
		{"[::1]x", "", 0, false},
		{"[::1]:0", "", 0, false},
		{"host:99999", "", 0, false},
		{"host:abc", "", 0, false},
		{":5060", "", 0, false},
		{"::1", "", 0, false},
	}
	for _, tt := range tests {
		h, p, err := SplitHostPort(tt.in)
		if (err == nil) != tt.ok || h != tt.host || p != tt.port {
			t.Errorf("SplitHostPort(%q) = %q, %d, %v; want %q, %d, ok=%v", tt.in, h, p, err, tt.host, tt.port, tt.ok)
		}
	}
}

func TestKeyAndTableLine(t *testing.T) {
	src := []byte(`# comment
top = 1
[core]
listen = ["udp:127.0.0.1:5060"]
  workers=2
"queue" = 3

[ modules.sl ]
[modules.maxfwd]
max_limit = 10
[lua]
script = "a.lua"
`)
	for _, tt := range []struct {
		key  toml.Key
		line int
	}{
		{toml.Key{"top"}, 2}, {toml.Key{"core", "listen"}, 4}, {toml.Key{"core", "workers"}, 5},
		{toml.Key{"core", "queue"}, 6}, {toml.Key{"modules", "maxfwd", "max_limit"}, 10},
		{toml.Key{"lua", "script"}, 12}, {toml.Key{"core", "script"}, 0}, {toml.Key{}, 0},
	} {
		if got := keyLine(src, tt.key); got != tt.line {
			t.Errorf("keyLine(%v) = %d, want %d", tt.key, got, tt.line)
		}
	}
	for table, line := range map[string]int{"core": 3, "modules.sl": 8, "modules.maxfwd": 9, "lua": 11, "nosuch": 0} {
		if got := TableLine(src, table); got != line {
			t.Errorf("TableLine(%q) = %d, want %d", table, got, line)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"listen", "log_level", "log_format", "queue", "workers"}
	for in, want := range map[string]string{"listn": "listen", "LISTEN": "listen", "log_levl": "log_level", "wrkers": "workers",
		"q": "", "timeout": "", "": ""} {
		if got := Suggest(in, names); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCoreDefaultsEvery asserts each [core] default of an empty configuration, field by field, against
// the values the README documents (not against DefaultCore, which would compare the code with itself).
// A new [core] key must be added here: the reflection check fails on a field this test does not name.
func TestCoreDefaultsEvery(t *testing.T) {
	c, err := ParseConfig(nil, "empty.toml", "/etc/siplua")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Listen":            []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"},
		"Advertise":         "",
		"Aliases":           []string(nil),
		"Workers":           0, // 0: one per CPU, at least 2 (WorkerCount)
		"Queue":             4096,
		"ServerHeader":      "siplua",
		"LogLevel":          "info",
		"LogFormat":         "text",
		"UDPReadSize":       65535,
		"TCPMaxConnections": 2048,
		"TCPLifetime":       120,
		"ShutdownTimeout":   5,
		"DNSServers":        []string(nil),
		"DNSTimeout":        2,
		"DNSMaxInflight":    64,
		"DNSCacheSize":      4096,
		"DNSNegTTL":         60,
		"Overload":          "503",
		"RetryAfter":        5,
		"UDPMTU":            1500,
		"UDPMTUTryTCP":      true,
	}
	v := reflect.ValueOf(c.Core)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		w, ok := want[name]
		if !ok {
			t.Errorf("[core] field %s has no asserted default here", name)
			continue
		}
		if got := v.Field(i).Interface(); !reflect.DeepEqual(got, w) {
			t.Errorf("[core] %s default = %#v, want %#v", name, got, w)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("asserted default %s is not a [core] field", name)
	}
	if n := c.WorkerCount(); n < 2 {
		t.Errorf("workers = 0 gives %d workers, want one per CPU and at least 2", n)
	}
	if c.Lua.RouteTimeout != 100 || c.Lua.Watch || c.Lua.Script != "scripts/default.lua" {
		t.Errorf("[lua] defaults: %+v", c.Lua)
	}
}
