package luabind_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
)

// Kamailio's KEMI function list (app_lua.api_list of Kamailio 5.6.3, copied from ../shared/kemi so the test
// does not depend on anything outside the repository).
const kemiList = "testdata/kamailio-5.6.3-kemi.tsv"

const (
	coverageBegin = "<!-- ksr-coverage:begin -->"
	coverageEnd   = "<!-- ksr-coverage:end -->"
)

// kemiFn is one line of the list: returns is int, bool, xval or none; params "none", "-" (app_lua's own
// KSR.x functions, untyped) or a comma-separated list of int and str.
type kemiFn struct {
	ns, name, returns, params string
}

func readKemiList(t *testing.T) []kemiFn {
	t.Helper()
	f, err := os.Open(kemiList)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []kemiFn
	sc := bufio.NewScanner(f)
	header := true
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if header { // "module name returns params"
			header = false
			continue
		}
		p := strings.Split(line, "\t")
		if len(p) != 4 {
			t.Fatalf("%s: bad line %q", kemiList, line)
		}
		out = append(out, kemiFn{ns: p[0], name: p[1], returns: p[2], params: p[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 600 {
		t.Fatalf("%s: only %d functions", kemiList, len(out))
	}
	return out
}

// kemiTypes maps a Go export to Kamailio's type names: string and int parameters are str and int; an int
// result is int, a bool bool, and every result that can be a string or nil (string, (string, bool),
// engine.Value) is xval; no result is none.
func kemiTypes(fn any) (returns, params string) {
	t := reflect.TypeOf(fn)
	var ps []string
	for i := 0; i < t.NumIn(); i++ {
		switch in := t.In(i); {
		case in == reflect.TypeOf((*engine.Msg)(nil)):
		case in.Kind() == reflect.String:
			ps = append(ps, "str")
		case in.Kind() == reflect.Int || in.Kind() == reflect.Int64:
			ps = append(ps, "int")
		default:
			ps = append(ps, in.String())
		}
	}
	params = "none"
	if len(ps) > 0 {
		params = strings.Join(ps, ", ")
	}
	switch t.NumOut() {
	case 0:
		returns = "none"
	case 2:
		returns = "xval"
	default:
		switch out := t.Out(0); {
		case out == reflect.TypeOf(engine.Value{}), out.Kind() == reflect.String, out.Kind() == reflect.Interface:
			returns = "xval" // an interface result is a Lua table or nil (pvx's xavp_getd), one of xval's forms
		case out.Kind() == reflect.Int || out.Kind() == reflect.Int64:
			returns = "int"
		case out.Kind() == reflect.Bool:
			returns = "bool"
		default:
			returns = out.String()
		}
	}
	return returns, params
}

// sameReturn: Kamailio's xval is a dynamic type (a string, an integer or nil in Lua), so a Go int result
// (always a number, as Kamailio's xval getters like kx.get_srcport give) is one of its forms; otherwise the
// types must be equal.
func sameReturn(kam, got string) bool {
	return kam == got || kam == "xval" && got == "int"
}

// nsOf is the Kamailio namespace of a siplua module: "-" for the top-level KSR functions.
func nsOf(lm engine.Loaded) string {
	if lm.TopLevel {
		return "-"
	}
	return lm.Name
}

type nsCoverage struct {
	ns       string
	total    int
	have     int
	missing  []string
	extra    []string // siplua functions Kamailio's list does not have
	mismatch []string
}

// coverage compares the registered exports (plus KSR.x and KSR.app_lua, whose functions luabind defines:
// xfns, by namespace) with the list.
func coverage(list []kemiFn, mods []engine.Loaded, xfns map[string]map[string]bool) []nsCoverage {
	type impl struct{ returns, params string }
	have := map[string]map[string]impl{}
	for _, lm := range mods {
		ns := nsOf(lm)
		if have[ns] == nil {
			have[ns] = map[string]impl{}
		}
		for _, ex := range lm.Inst.Exports() {
			r, p := kemiTypes(ex.Fn)
			have[ns][ex.Name] = impl{r, p}
		}
	}
	// Lua-defined functions have no Go types: KSR.x's are untyped in the list; KSR.app_lua's are taken as
	// declared (their arguments and results are checked by TestAppLua against Kamailio)
	declared := map[string]impl{}
	for _, k := range list {
		declared[k.ns+"."+k.name] = impl{k.returns, k.params}
	}
	for ns, names := range xfns {
		have[ns] = map[string]impl{}
		for name := range names {
			if ns == "x" {
				have[ns][name] = impl{"none", "-"}
			} else {
				have[ns][name] = declared[ns+"."+name]
			}
		}
	}
	byNS := map[string]*nsCoverage{}
	listed := map[string]map[string]bool{}
	for _, k := range list {
		c := byNS[k.ns]
		if c == nil {
			c = &nsCoverage{ns: k.ns}
			byNS[k.ns] = c
			listed[k.ns] = map[string]bool{}
		}
		c.total++
		listed[k.ns][k.name] = true
		got, ok := have[k.ns][k.name]
		if !ok {
			c.missing = append(c.missing, k.name)
			continue
		}
		c.have++
		if k.params == "-" || k.ns == "x" { // app_lua's own KSR.x functions: no declared types, or variadic
			continue
		}
		if !sameReturn(k.returns, got.returns) || got.params != k.params {
			c.mismatch = append(c.mismatch, fmt.Sprintf("%s: kamailio %s(%s), siplua %s(%s)", k.name, k.returns, k.params, got.returns, got.params))
		}
	}
	for ns, fns := range have {
		c := byNS[ns]
		if c == nil {
			c = &nsCoverage{ns: ns}
			byNS[ns] = c
		}
		for name := range fns {
			if !listed[ns][name] {
				c.extra = append(c.extra, name)
			}
		}
	}
	var out []nsCoverage
	for _, c := range byNS {
		sort.Strings(c.missing)
		sort.Strings(c.extra)
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ns < out[j].ns })
	return out
}

// coverageTable renders the coverage as a markdown table for the README.
func coverageTable(cs []nsCoverage) string {
	var b strings.Builder
	b.WriteString("\n| namespace | Kamailio 5.6.3 | siplua | coverage | not implemented |\n|---|---:|---:|---:|---|\n")
	total, have := 0, 0
	for _, c := range cs {
		ns := "`KSR." + c.ns + "`"
		if c.ns == "-" {
			ns = "`KSR` (core)"
		}
		if c.total == 0 {
			if len(c.extra) > 0 {
				fmt.Fprintf(&b, "| %s | – | %d | not in Kamailio's list | |\n", ns, len(c.extra))
			}
			continue
		}
		total += c.total
		have += c.have
		fmt.Fprintf(&b, "| %s | %d | %d | %d %% | %s |\n", ns, c.total, c.have, 100*c.have/c.total, strings.Join(c.missing, ", "))
	}
	fmt.Fprintf(&b, "| **all** | %d | %d | %d %% | |\n", total, have, 100*have/total)
	return b.String()
}

// xFunctions asks a running siplua which KSR.x and KSR.app_lua functions its Lua states define (luabind
// defines them, not a module).
func xFunctions(t *testing.T, list []kemiFn) map[string]map[string]bool {
	t.Helper()
	var nss, names, exprs []string
	for _, k := range list {
		if k.ns == "x" || k.ns == "app_lua" {
			nss, names = append(nss, k.ns), append(names, k.name)
			exprs = append(exprs, "type(KSR."+k.ns+"."+k.name+")")
		}
	}
	p := enginetest.Start(t, "[modules.sl]\n", enginetest.EvalScript)
	res := p.UDPClient(t).Eval("OPTIONS", "sip:x@127.0.0.1", nil, exprs...)
	out := map[string]map[string]bool{"x": {}, "app_lua": {}}
	for i, r := range res {
		if r == "string:function" {
			out[nss[i]][names[i]] = true
		}
	}
	return out
}

// TestKemiCoverage compares the KSR functions of every registered module with Kamailio 5.6.3's KEMI list:
// it fails when a function both have differs in parameter or return types, and keeps the README's coverage
// table (between the ksr-coverage markers) current. Rewrite the table with:
// go test ./luabind -run TestKemiCoverage -update
func TestKemiCoverage(t *testing.T) {
	list := readKemiList(t)
	cs := coverage(list, luabind.AllModules(), xFunctions(t, list))
	for _, c := range cs {
		for _, m := range c.mismatch {
			t.Errorf("KSR.%s.%s", c.ns, m)
		}
		if len(c.extra) > 0 {
			t.Logf("KSR.%s: siplua functions not in Kamailio's list: %s", c.ns, strings.Join(c.extra, ", "))
		}
	}
	table := coverageTable(cs)
	t.Logf("coverage:%s", table)

	const path = "../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("README.md must exist and hold the coverage table: %v", err)
	}
	b := bytes.Index(readme, []byte(coverageBegin))
	e := bytes.Index(readme, []byte(coverageEnd))
	if b < 0 || e < b {
		t.Fatalf("README.md has no %s ... %s block for the coverage table", coverageBegin, coverageEnd)
	}
	if got := string(readme[b+len(coverageBegin) : e]); got != table {
		if *update {
			out := append([]byte{}, readme[:b+len(coverageBegin)]...)
			out = append(out, table...)
			out = append(out, readme[e:]...)
			if os.Getenv("CI") == "true" {
				t.Fatal("README.md is never rewritten under CI=true (drop -update)")
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Errorf("README.md KSR coverage table was stale and has been rewritten; run again without -update")
			return
		}
		t.Errorf("README.md KSR coverage table is stale; run: go test ./luabind -run TestKemiCoverage -update\n%s", diffLines(got, table))
	}
}

// TestKemiTypes: the Go-to-Kamailio type mapping the coverage test relies on.
func TestKemiTypes(t *testing.T) {
	for _, c := range []struct {
		fn          any
		ret, params string
	}{
		{func(*engine.Msg) int { return 0 }, "int", "none"},
		{func(*engine.Msg, string, int) bool { return false }, "bool", "str, int"},
		{func(*engine.Msg, string) (string, bool) { return "", false }, "xval", "str"},
		{func(*engine.Msg, string) engine.Value { return engine.Value{} }, "xval", "str"},
		{func(*engine.Msg) string { return "" }, "xval", "none"},
		{func(*engine.Msg, string) {}, "none", "str"},
	} {
		if !sameReturn("xval", "int") || sameReturn("int", "xval") || sameReturn("bool", "int") {
			t.Error("sameReturn: xval accepts int, nothing else is loose")
		}
		r, p := kemiTypes(c.fn)
		if r != c.ret || p != c.params {
			t.Errorf("%T: %s(%s), want %s(%s)", c.fn, r, p, c.ret, c.params)
		}
	}
	// a mismatch is reported
	list := []kemiFn{{"hdr", "get", "xval", "str"}, {"hdr", "remove", "int", "str"}}
	mods := []engine.Loaded{{Module: engine.Module{Name: "hdr"}, Inst: fakeInst{
		{Name: "get", Fn: func(*engine.Msg, string) bool { return false }},
	}}}
	cs := coverage(list, mods, nil)
	var hdr nsCoverage
	for _, c := range cs {
		if c.ns == "hdr" {
			hdr = c
		}
	}
	if hdr.total != 2 || hdr.have != 1 || len(hdr.mismatch) != 1 || len(hdr.missing) != 1 || hdr.missing[0] != "remove" {
		t.Errorf("coverage of a fake hdr = %+v", hdr)
	}
}

type fakeInst []engine.Export

func (f fakeInst) Exports() []engine.Export { return f }
