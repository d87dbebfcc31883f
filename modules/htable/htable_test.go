package htable_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/htable"
)

// tables is the htable configuration of most tests: a plain table, an integer table (initval), an
// autoexpire table.
const tables = `
[modules.htable.tables.plain]
[modules.htable.tables.cnt]
initval = 0
size = 8
[modules.htable.tables.ipban]
autoexpire = 60
`

// luaCfg gives routes a generous budget: these tests run under -race on a shared machine, and they test
// the tables, not the route budget.
const luaCfg = "[lua]\nscript = \"script.lua\"\nroute_timeout = 2000\n"

func start(t testing.TB, extra string) *enginetest.Proxy {
	t.Helper()
	return enginetest.Start(t, luaCfg+"[core]\nworkers = 2\n[modules.sl]\n[modules.htable]\n"+extra, enginetest.EvalScript)
}

// step is one Lua expression and the value it must give, as EvalScript renders it.
type step struct{ expr, want string }

// run evaluates the steps in order, in one request per step, so that each step sees the previous ones.
func run(t *testing.T, c *enginetest.Client, steps []step) {
	t.Helper()
	for i, s := range steps {
		// One header line: multi-line functions are joined (they use no line comments).
		expr := strings.Join(strings.Fields(s.expr), " ")
		got := c.Eval("OPTIONS", "sip:htable@127.0.0.1", nil, expr)[0]
		if got != s.want {
			t.Errorf("step %d: %s = %s, want %s", i, s.expr, got, s.want)
		}
	}
}

func TestKSRFunctions(t *testing.T) {
	p := start(t, tables)
	c := p.UDPClient(t)
	run(t, c, []step{
		// Getters: nil, "" and "<null>" for a missing item; initval in an integer table.
		{`KSR.htable.sht_get("plain", "a")`, "nil:nil"},
		{`KSR.htable.sht_gete("plain", "a")`, "string:"},
		{`KSR.htable.sht_getw("plain", "a")`, "string:<null>"},
		{`KSR.htable.sht_get("cnt", "a")`, "number:0"},
		{`KSR.htable.sht_get("nosuch", "a")`, "nil:nil"},
		{`KSR.htable.sht_is_null("plain", "a")`, "number:1"},
		{`KSR.htable.sht_is_null("cnt", "a")`, "number:-2"},
		{`KSR.htable.sht_is_null("nosuch", "a")`, "number:2"},
		// Setters.
		{`KSR.htable.sht_sets("plain", "a", "x")`, "number:1"},
		{`KSR.htable.sht_is_null("plain", "a")`, "number:-1"},
		{`KSR.htable.sht_get("plain", "a")`, "string:x"},
		{`KSR.htable.sht_sets("nosuch", "a", "x")`, "number:-1"},
		{`KSR.htable.sht_seti("plain", "n", 5)`, "number:1"},
		{`KSR.htable.sht_get("plain", "n")`, "number:5"},
		{`KSR.htable.sht_sets("plain", "s5", "5")`, "number:1"},
		{`KSR.htable.sht_get("plain", "s5")`, "string:5"},
		// inc/dec: the new value; -255 for a string, a missing item without initval, no such table.
		{`KSR.htable.sht_inc("plain", "n")`, "number:6"},
		{`KSR.htable.sht_dec("plain", "n")`, "number:5"},
		{`KSR.htable.sht_inc("plain", "a")`, "number:-255"},
		{`KSR.htable.sht_inc("plain", "missing")`, "number:-255"},
		{`KSR.htable.sht_inc("nosuch", "k")`, "number:-255"},
		{`KSR.htable.sht_inc("cnt", "k")`, "number:1"},
		{`KSR.htable.sht_dec("cnt", "j")`, "number:-1"},
		{`KSR.htable.sht_inc("cnt", "k")`, "number:2"},
		// Matching: eq ne re sw; regular expressions ignore case as Kamailio's REG_ICASE.
		{`KSR.htable.sht_match_name("plain", "eq", "a")`, "number:1"},
		{`KSR.htable.sht_match_name("plain", "eq", "zz")`, "number:-1"},
		{`KSR.htable.sht_match_name("plain", "sw", "s")`, "number:1"},
		{`KSR.htable.sht_match_name("plain", "re", "^N$")`, "number:1"},
		{`KSR.htable.sht_match_name("plain", "xx", "a")`, "number:-1"},
		{`KSR.htable.sht_match_str_value("plain", "eq", "x")`, "number:1"},
		{`KSR.htable.sht_match_str_value("plain", "eq", "6")`, "number:-1"},
		// Removal.
		{`KSR.htable.sht_rm("plain", "a")`, "number:1"},
		{`KSR.htable.sht_get("plain", "a")`, "nil:nil"},
		{`KSR.htable.sht_rm("nosuch", "a")`, "number:-1"},
		{`KSR.htable.sht_sets("plain", "b1", "v1") + KSR.htable.sht_sets("plain", "b2", "v2") + KSR.htable.sht_sets("plain", "c", "w")`, "number:3"},
		{`KSR.htable.sht_rm_name_re("plain", "^B")`, "number:1"},
		{`KSR.htable.sht_get("plain", "b2")`, "nil:nil"},
		{`KSR.htable.sht_get("plain", "c")`, "string:w"},
		{`KSR.htable.sht_rm_name_re("plain", "(")`, "number:-1"},
		{`KSR.htable.sht_rm_name_re("nosuch", "x")`, "number:1"},
		{`KSR.htable.sht_rm_value_re("plain", "^w$")`, "number:1"},
		{`KSR.htable.sht_get("plain", "c")`, "nil:nil"},
		{`KSR.htable.sht_sets("plain", "pre-1", "one") + KSR.htable.sht_sets("plain", "x-end", "two")`, "number:2"},
		{`KSR.htable.sht_rm_name("plain", "sw", "pre-")`, "number:1"},
		{`KSR.htable.sht_rm_value("plain", "ew", "wo")`, "number:1"},
		{`KSR.htable.sht_rm_name("plain", "zz", "x")`, "number:-1"},
		{`tostring(KSR.htable.sht_get("plain", "pre-1")) .. tostring(KSR.htable.sht_get("plain", "x-end"))`, "string:nilnil"},
		// Expiry: sht_setxs gives its own lifetime; sht_setex works only in autoexpire tables, as Kamailio.
		{`KSR.htable.sht_setxs("plain", "t", "v", 100)`, "number:1"},
		{`KSR.pv.get("$shtex(plain=>t)")`, "number:100"},
		{`KSR.htable.sht_setex("plain", "t", 5)`, "number:1"},
		{`KSR.pv.get("$shtex(plain=>t)")`, "number:100"},
		{`KSR.htable.sht_seti("ipban", "1.2.3.4", 1)`, "number:1"},
		{`KSR.pv.get("$shtex(ipban=>1.2.3.4)")`, "number:60"},
		{`KSR.htable.sht_setex("ipban", "1.2.3.4", 5)`, "number:1"},
		{`KSR.pv.get("$shtex(ipban=>1.2.3.4)")`, "number:5"},
		{`KSR.htable.sht_setxi("ipban", "x", 7, 9)`, "number:1"},
		{`KSR.htable.sht_get("ipban", "x") * 100 + KSR.pv.get("$shtex(ipban=>x)")`, "number:709"},
		// Pseudo-variables: $sht is writable; null removes.
		{`KSR.pv.sets("$sht(plain=>p)", "hello")`, "boolean:true"},
		{`KSR.htable.sht_get("plain", "p")`, "string:hello"},
		{`KSR.pv.seti("$sht(plain=>q)", 7)`, "boolean:true"},
		{`KSR.pv.get("$sht(plain=>q)")`, "number:7"},
		{`KSR.pv.unset("$sht(plain=>q)")`, "boolean:true"},
		{`KSR.htable.sht_get("plain", "q")`, "nil:nil"},
		{`KSR.pv.get("$sht(cnt=>none)")`, "number:0"},
		{`KSR.pv.get("$shtinc(cnt=>k)")`, "number:3"},
		{`KSR.pv.get("$sht(nosuch=>a)")`, "nil:nil"},
		{`KSR.pv.sets("$sht(nosuch=>a)", "x")`, "boolean:false"},
		// Locks are recursive for the message holding them.
		{`KSR.htable.sht_lock("plain", "k") + KSR.htable.sht_lock("plain", "k") + KSR.htable.sht_unlock("plain", "k") + KSR.htable.sht_unlock("plain", "k")`, "number:4"},
		{`KSR.htable.sht_lock("plain", "k") + KSR.htable.sht_unlock("plain", "k") + KSR.htable.sht_unlock("plain", "k")`, "number:1"},
		{`KSR.htable.sht_lock("nosuch", "k")`, "number:-1"},
		// Reset returns 0, as Kamailio's KEMI.
		{`KSR.htable.sht_reset("plain")`, "number:0"},
		{`KSR.htable.sht_get("plain", "n")`, "nil:nil"},
		{`KSR.htable.sht_reset("nosuch")`, "number:-1"},
	})
}

// iterate walks a table with an iterator, returning "key=value" pairs sorted.
const iterate = `(function()
	local t = {}
	if KSR.htable.sht_iterator_start("i", "plain") < 0 then return "start failed" end
	while KSR.htable.sht_iterator_next("i") > 0 do
		t[#t+1] = KSR.pv.get("$shtitkey(i)") .. "=" .. tostring(KSR.pv.get("$shtitval(i)"))
	end
	KSR.htable.sht_iterator_end("i")
	table.sort(t)
	return table.concat(t, ",")
end)()`

func TestIterator(t *testing.T) {
	p := start(t, tables)
	c := p.UDPClient(t)
	run(t, c, []step{
		{iterate, "string:"},
		{`KSR.htable.sht_sets("plain", "a", "x") + KSR.htable.sht_seti("plain", "b", 2) + KSR.htable.sht_sets("plain", "c", "z")`, "number:3"},
		{iterate, "string:a=x,b=2,c=z"},
		// Change every value through the iterator, remove "b".
		{`(function()
			KSR.htable.sht_iterator_start("j", "plain")
			local n = 0
			local r = KSR.htable.sht_iterator_next("j")
			while r > 0 do
				if KSR.pv.get("$shtitkey(j)") == "b" then
					r = KSR.htable.sht_iterator_rm("j")
				else
					KSR.htable.sht_iterator_sets("j", "new")
					n = n + 1
					r = KSR.htable.sht_iterator_next("j")
				end
			end
			KSR.htable.sht_iterator_end("j")
			return n
		end)()`, "number:2"},
		{iterate, "string:a=new,c=new"},
		{`KSR.htable.sht_iterator_start("k", "plain") + KSR.htable.sht_iterator_next("k") + KSR.htable.sht_iterator_seti("k", 9)`, "number:3"},
		{`KSR.htable.sht_iterator_next("nosuch")`, "number:-1"},
		{`KSR.htable.sht_iterator_start("k", "nosuch")`, "number:-1"},
		{`KSR.htable.sht_iterator_end("nosuch")`, "number:-1"},
		{`KSR.htable.sht_iterator_sets("nosuch", "v")`, "number:-1"},
		// At most 4 iterators per message (Kamailio's limit).
		{`KSR.htable.sht_iterator_start("1", "plain") + KSR.htable.sht_iterator_start("2", "plain") + KSR.htable.sht_iterator_start("3", "plain") + KSR.htable.sht_iterator_start("4", "plain") + KSR.htable.sht_iterator_start("5", "plain")`, "number:3"},
	})
	// A removal at the last item reports the end (-2).
	run(t, c, []step{
		{`KSR.htable.sht_reset("plain") + KSR.htable.sht_sets("plain", "only", "1")`, "number:1"},
		{`KSR.htable.sht_iterator_start("i", "plain") + KSR.htable.sht_iterator_next("i") + KSR.htable.sht_iterator_rm("i")`, "number:0"},
		{iterate, "string:"},
	})
}

// TestConcurrentInc sends many requests from several sockets at once, each incrementing the same item:
// every increment is seen once (the values returned are exactly 1..N) and the total is exact.
func TestConcurrentInc(t *testing.T) {
	p := enginetest.Start(t, luaCfg+"[core]\nworkers = 4\n[modules.sl]\n[modules.htable]\n"+tables, enginetest.EvalScript)
	const clients, each = 8, 150
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range clients {
		c := p.UDPClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				r := c.Eval("MESSAGE", "sip:inc@127.0.0.1", nil, `KSR.htable.sht_inc("cnt", "hits")`)[0]
				mu.Lock()
				seen[r]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := 1; i <= clients*each; i++ {
		if k := "number:" + strconv.Itoa(i); seen[k] != 1 {
			t.Errorf("value %d returned %d times", i, seen[k])
		}
	}
	got := p.UDPClient(t).Eval("OPTIONS", "sip:x@127.0.0.1", nil, `KSR.htable.sht_get("cnt", "hits")`)[0]
	if want := "number:" + strconv.Itoa(clients*each); got != want {
		t.Fatalf("total = %s, want %s", got, want)
	}
}

// TestExpiry: reads never return an expired item; updateexpire decides whether an update restarts the
// lifetime; the sweep removes expired items (the gauge drops).
func TestExpiry(t *testing.T) {
	p := start(t, `timer_interval = 1
[modules.htable.tables.upd]
autoexpire = 2
[modules.htable.tables.keep]
autoexpire = 2
updateexpire = false
initval = 0
[modules.htable.tables.plain]
`)
	c := p.UDPClient(t)
	run(t, c, []step{
		{`KSR.htable.sht_seti("upd", "a", 1) + KSR.htable.sht_seti("keep", "a", 1)`, "number:2"},
		{`KSR.htable.sht_setxs("plain", "short", "v", 1)`, "number:1"},
	})
	time.Sleep(1200 * time.Millisecond)
	run(t, c, []step{
		{`KSR.htable.sht_get("plain", "short")`, "nil:nil"},
		{`KSR.htable.sht_inc("upd", "a") * 10 + KSR.htable.sht_inc("keep", "a")`, "number:22"},
	})
	time.Sleep(1200 * time.Millisecond)
	run(t, c, []step{
		{`KSR.htable.sht_get("upd", "a")`, "number:2"},  // updated at 1.2 s: lives until 3.2 s
		{`KSR.htable.sht_get("keep", "a")`, "number:0"}, // created at 0: gone at 2 s, reads as initval
		{`KSR.htable.sht_is_null("plain", "short")`, "number:1"},
		// An increment of an expired item starts again from initval.
		{`KSR.htable.sht_inc("keep", "a")`, "number:1"},
	})
	h, err := htable.FromEngine(p.E)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		for _, g := range h.Gauges() {
			if g.Name == name {
				return g.Value()
			}
		}
		t.Fatalf("no gauge %s", name)
		return 0
	}
	if n := gauge("htable_items_keep"); n != 1 {
		t.Errorf("htable_items_keep = %v, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for gauge("htable_items_upd") != 0 || gauge("htable_items_plain") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sweep did not remove expired items: upd=%v plain=%v", gauge("htable_items_upd"), gauge("htable_items_plain"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartKeepsValues stops an engine and starts a new one on the same snapshot file: the items and
// their lifetimes are back (Kamailio loses them, kamailio#260).
func TestRestartKeepsValues(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "ht.snapshot")
	cfg := fmt.Sprintf("snapshot_file = %q\n", snap) + tables
	t.Run("first", func(t *testing.T) {
		c := start(t, cfg).UDPClient(t)
		run(t, c, []step{
			{`KSR.htable.sht_sets("plain", "name", "va\r\nl\0ue") + KSR.htable.sht_seti("cnt", "n", 41) + KSR.htable.sht_inc("cnt", "n")`, "number:44"},
			{`KSR.htable.sht_seti("ipban", "10.0.0.1", 3) + KSR.htable.sht_setex("ipban", "10.0.0.1", 30)`, "number:2"},
			{`KSR.htable.sht_setxs("plain", "gone", "v", 1)`, "number:1"},
		})
	}) // the engine stops here and writes the snapshot
	time.Sleep(1100 * time.Millisecond) // "gone" expires while no engine runs
	t.Run("second", func(t *testing.T) {
		c := start(t, cfg).UDPClient(t)
		run(t, c, []step{
			{`KSR.htable.sht_get("plain", "name") == "va\r\nl\0ue"`, "boolean:true"},
			{`KSR.htable.sht_get("cnt", "n")`, "number:42"},
			{`KSR.htable.sht_get("ipban", "10.0.0.1")`, "number:3"},
			{`KSR.pv.get("$shtex(ipban=>10.0.0.1)") <= 30 and KSR.pv.get("$shtex(ipban=>10.0.0.1)") >= 28`, "boolean:true"},
			{`KSR.htable.sht_get("plain", "gone")`, "nil:nil"},
		})
	})
	// A damaged file keeps the items before the damage.
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snap, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("damaged", func(t *testing.T) {
		p := start(t, cfg)
		h, err := htable.FromEngine(p.E)
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, g := range h.Gauges() {
			n += g.Value()
		}
		if n < 1 || n > 3 {
			t.Errorf("items after a cut snapshot = %v, want 1..3 (the good prefix)", n)
		}
		if !strings.Contains(p.Log.String(), "htable snapshot damaged") {
			t.Errorf("damage not logged:\n%s", p.Log.String())
		}
	})
}

// TestConfigErrors: every bad parameter is a clear error naming it.
// TestImplicitModuleTable: [modules.htable.tables.x] alone (no [modules.htable] line) loads the module.
func TestImplicitModuleTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("[modules.htable.tables.ipban]\nautoexpire = 300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfigFile(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, ok := cfg.Mods.Get("htable"); !ok {
		t.Fatalf("htable not loaded")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[modules.htable]\n[modules.htable.tables.a]\nsize = 40\n", "tables.a.size: expected 1..16"},
		{"[modules.htable]\n[modules.htable.tables.a]\nbackend = \"mysql\"\n", `tables.a.backend: expected "memory" or "redis", got "mysql"`},
		{"[modules.htable]\n[modules.htable.tables.a]\nautoexpire = -1\n", "tables.a.autoexpire"},
		{"[modules.htable]\n[modules.htable.tables.a]\nredis_url = \"redis://x\"\n", "redis_url and redis_prefix need backend"},
		{"[modules.htable]\n[modules.htable.tables.a]\nbackend = \"redis\"\nredis_url = \"http://x\"\n", "tables.a.redis_url: expected redis://"},
		{"[modules.htable]\n[modules.htable.tables.a]\nsizes = 4\n", "sizes"},
		{"[modules.htable]\ntimer_interval = 0\n", "timer_interval: expected 1..3600"},
		{"[modules.htable]\nredis_timeout = 0\n", "redis_timeout"},
		{"[modules.htable.tables.a]\nsize = 40\n", "tables.a.size: expected 1..16"}, // no [modules.htable] line
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(path, []byte(tc.toml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := engine.LoadConfigFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.toml, err, tc.want)
		}
	}
}

// startCtl serves the control socket of p.
func startCtl(t *testing.T, p *enginetest.Proxy) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ht") // short: unix socket paths are limited to ~104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := ctl.Listen(filepath.Join(dir, "s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterModules(p.E.Config().Mods)
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s.Path()
}

func call(t *testing.T, sock, method string, args ...string) string {
	t.Helper()
	_, res, err := ctl.Call(sock, method, args, 5*time.Second)
	if err != nil {
		var ce *ctl.Error
		if errors.As(err, &ce) {
			return fmt.Sprintf("error %d: %s", ce.Code, ce.Message)
		}
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(res, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

var dates = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)

func TestCommands(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "ht.snapshot")
	p := start(t, fmt.Sprintf("snapshot_file = %q\n", snap)+tables)
	sock := startCtl(t, p)
	c := p.UDPClient(t)
	for _, tc := range []struct {
		method string
		args   []string
		want   string
	}{
		{"htable.get", []string{"plain", "a"}, "error 500: Key name doesn't exist in htable."},
		{"htable.get", []string{"nosuch", "a"}, "error 500: No such htable"},
		{"htable.get", []string{"plain"}, "error 500: Not enough parameters (htable name and key name)"},
		{"htable.sets", []string{"plain", "a", "hello"}, `"ok"`},
		{"htable.seti", []string{"plain", "n", "12"}, `"ok"`},
		{"htable.seti", []string{"plain", "n", "x"}, `error 500: htable.seti: value: expected an integer, got "x"`},
		{"htable.get", []string{"plain", "a"}, `{"item":{"expire":"NEVER","name":"a","value":"hello"}}`},
		{"htable.seti", []string{"ipban", "1.2.3.4", "1"}, `"ok"`},
		{"htable.get", []string{"ipban", "1.2.3.4"}, `{"item":{"expire":"DATE","name":"1.2.3.4","value":1}}`},
		{"htable.dump", []string{"plain"}, `[{"expire":"NEVER","name":"a","value":"hello"},{"expire":"NEVER","name":"n","value":12}]`},
		{"htable.delete", []string{"plain", "a"}, `"ok"`},
		{"htable.dump", []string{"plain"}, `[{"expire":"NEVER","name":"n","value":12}]`},
		{"htable.listTables", nil, `[{"backend":"memory","expire":0,"initval":0,"name":"cnt","size":256,"updateexpire":1},{"backend":"memory","expire":60,"name":"ipban","size":16,"updateexpire":1},{"backend":"memory","expire":0,"name":"plain","size":16,"updateexpire":1}]`},
		{"htable.stats", nil, `[{"all":0,"name":"cnt","slots":256},{"all":1,"name":"ipban","slots":16},{"all":1,"name":"plain","slots":16}]`},
		{"htable.flush", []string{"ipban"}, `"ok"`},
		{"htable.get", []string{"ipban", "1.2.3.4"}, "error 500: Key name doesn't exist in htable."},
	} {
		if got := dates.ReplaceAllString(call(t, sock, tc.method, tc.args...), "DATE"); got != tc.want {
			t.Errorf("%s %v:\n got %s\nwant %s", tc.method, tc.args, got, tc.want)
		}
	}
	// The script sees what ctl wrote.
	run(t, c, []step{{`KSR.htable.sht_get("plain", "n")`, "number:12"}})

	// htable.reload: the table becomes what the snapshot file holds for it.
	h, err := htable.FromEngine(p.E)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(); err != nil { // writes the snapshot (and stops the timers; the tables stay usable)
		t.Fatal(err)
	}
	run(t, c, []step{{`KSR.htable.sht_seti("plain", "n", 99) + KSR.htable.sht_seti("plain", "new", 1)`, "number:2"}})
	if got := call(t, sock, "htable.reload", "plain"); got != `{"items":1}` {
		t.Errorf("reload = %s", got)
	}
	run(t, c, []step{
		{`KSR.htable.sht_get("plain", "n")`, "number:12"},
		{`KSR.htable.sht_get("plain", "new")`, "nil:nil"},
	})
	if got := call(t, sock, "htable.reload", "nosuch"); got != "error 500: No such htable" {
		t.Errorf("reload nosuch = %s", got)
	}
}

// TestLockExcludesOtherMessages: a lock held by one message makes another one's sht_lock wait and fail
// after lock_timeout; after the unlock it succeeds.
func TestLockExcludesOtherMessages(t *testing.T) {
	p := start(t, "lock_timeout = 20\n"+tables)
	lock := p.Export(t, "htable", "sht_lock").(func(*engine.Msg, string, string) int)
	unlock := p.Export(t, "htable", "sht_unlock").(func(*engine.Msg, string, string) int)
	raw := enginetest.CRLF("OPTIONS sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@127.0.0.1>\nCall-ID: l1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	m1, m2 := enginetest.Msg(t, p, raw), enginetest.Msg(t, p, raw)
	if r := lock(m1, "plain", "k"); r != 1 {
		t.Fatalf("first lock = %d", r)
	}
	t0 := time.Now()
	if r := lock(m2, "plain", "k"); r != -1 {
		t.Fatalf("second lock while held = %d, want -1", r)
	}
	if d := time.Since(t0); d < 15*time.Millisecond || d > 2*time.Second {
		t.Errorf("second lock gave up after %v, want about lock_timeout (20ms)", d)
	}
	if r := unlock(m2, "plain", "k"); r != -1 {
		t.Errorf("unlock by a message not holding it = %d, want -1", r)
	}
	if r := unlock(m1, "plain", "k"); r != 1 {
		t.Fatalf("unlock = %d", r)
	}
	if r := lock(m2, "plain", "k"); r != 1 {
		t.Fatalf("lock after unlock = %d", r)
	}
}

// TestConfigReload: a reload with the same tables warns about nothing and keeps the items; a changed
// table parameter needs a restart (the running tables stay).
func TestConfigReload(t *testing.T) {
	cfg := luaCfg + "[core]\nworkers = 2\n[modules.sl]\n[modules.htable]\n" + tables
	p := enginetest.Start(t, cfg, enginetest.EvalScript)
	c := p.UDPClient(t)
	run(t, c, []step{{`KSR.htable.sht_sets("plain", "a", "x")`, "number:1"}})
	warnings, err := p.Reload()
	if err != nil || len(warnings) != 0 {
		t.Fatalf("reload with the same config: warnings %q, err %v", warnings, err)
	}
	p.WriteFile(t, "config.toml", strings.Replace(cfg, "autoexpire = 60", "autoexpire = 30", 1))
	warnings, err = p.Reload()
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "modules.htable.tables changed") {
		t.Fatalf("reload with a changed table: warnings %q, err %v", warnings, err)
	}
	run(t, c, []step{{`KSR.htable.sht_get("plain", "a")`, "string:x"}})
}
