package routetest

import (
	"bytes"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	_ "github.com/siplua/siplua/modules/all"
	lua "github.com/yuin/gopher-lua"
)

// TestNeutralize: snapshot files and Redis backends are switched off, other parameters are left alone.
func TestNeutralize(t *testing.T) {
	type params struct {
		SnapshotFile string `toml:"snapshot_file"`
		Backend      string `toml:"backend"`
		RedisURL     string `toml:"redis_url"`
	}
	p := &params{SnapshotFile: "x.snapshot", Backend: "redis", RedisURL: "redis://127.0.0.1:1"}
	ch := neutralize(p)
	if p.SnapshotFile != "" || p.Backend != "memory" || p.RedisURL != "redis://127.0.0.1:1" || len(ch) != 2 {
		t.Fatalf("got %+v, changes %q", p, ch)
	}
	q := &params{Backend: "memory"}
	if ch := neutralize(q); len(ch) != 0 || q.Backend != "memory" {
		t.Fatalf("a memory backend without snapshot must stay: %+v %q", q, ch)
	}
	if ch := neutralize(struct{}{}); ch != nil {
		t.Fatalf("a non-pointer: %q", ch)
	}
}

func TestDigestParams(t *testing.T) {
	got := digestParams(`Digest realm="example.org", nonce="a,b", qop="auth,auth-int", algorithm=SHA-256, stale=false`)
	want := map[string]string{"realm": "example.org", "nonce": "a,b", "qop": "auth,auth-int", "algorithm": "SHA-256", "stale": "false"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// TestSiptestStubs keeps scripts/types/siptest.lua (the editor definitions of the siptest table) in step
// with the functions siptest really has.
func TestSiptestStubs(t *testing.T) {
	src, err := os.ReadFile("../../scripts/types/siptest.lua")
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(string(src)); err != nil {
		t.Fatal(err)
	}
	stub := L.GetGlobal("siptest").(*lua.LTable)
	r := &runner{L: L}
	real := r.siptestTable()
	names := func(tb *lua.LTable) []string {
		var out []string
		tb.ForEach(func(k, v lua.LValue) {
			if _, ok := v.(*lua.LFunction); ok {
				out = append(out, k.String())
			}
		})
		sort.Strings(out)
		return out
	}
	if g, w := strings.Join(names(stub), " "), strings.Join(names(real), " "); g != w {
		t.Errorf("scripts/types/siptest.lua defines %s\nsiptest has %s", g, w)
	}
}

// BenchmarkRun is the cost of one route test case: a fresh engine with the registrar example's modules,
// a seeded contact and an INVITE relayed by tm.
func BenchmarkRun(b *testing.B) {
	dir := b.TempDir()
	test := `function test_call()
	siptest.ctl("ul.add", "bob", "sip:bob@192.0.2.20:5062")
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:carol@example.com", ruri = "sip:bob@127.0.0.1"})
	siptest.eq(res.relay.dst, "udp:192.0.2.20:5062")
end
`
	for _, f := range []string{"registrar.toml", "registrar.lua", "users.csv"} {
		data, err := os.ReadFile("../../scripts/examples/" + f)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+f, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/registrar_test.lua", []byte(test), 0o644); err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	o := Options{Out: &out, Load: func() (*engine.Config, error) { return engine.LoadConfigFile(dir + "/registrar.toml") }}
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		sum, err := Run(o)
		if err != nil || sum.Failed > 0 || sum.Tests != 1 {
			b.Fatalf("%v %+v\n%s", err, sum, out.String())
		}
	}
}

// TestTestTimeout: a test's own endless loop fails that test (after TestTimeout), the next test runs.
func TestTestTimeout(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"c.toml":     "[core]\nlisten = [\"udp:127.0.0.1:5060\"]\n[lua]\nscript = \"s.lua\"\n[modules.sl]\n",
		"s.lua":      "function ksr_request_route() KSR.sl.sl_send_reply(200, \"OK\") end\n",
		"s_test.lua": "function test_loop() while true do end end\nfunction test_after() siptest.eq(siptest.run(siptest.request{}).status, 200) end\n",
	}
	for n, c := range files {
		if err := os.WriteFile(dir+"/"+n, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	sum, err := Run(Options{Out: &out, TestTimeout: 100 * time.Millisecond,
		Load: func() (*engine.Config, error) { return engine.LoadConfigFile(dir + "/c.toml") }})
	if err != nil || sum.Tests != 2 || sum.Failed != 1 || !strings.Contains(out.String(), "s_test.lua:1: test did not finish within 100ms") {
		t.Fatalf("%v %+v\n%s", err, sum, out.String())
	}
}
