package pv_test

import (
	"bufio"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestKEMICoverage compares the pv, pvx, xlog and kex exports with Kamailio 5.6.3's list
// (../shared/kemi/kamailio-5.6.3-kemi.tsv next to the checkout): it reports what is implemented and
// fails when a function both have differs in its parameter or return types.
func TestKEMICoverage(t *testing.T) {
	var f *os.File
	for _, p := range []string{"../../../shared/kemi/kamailio-5.6.3-kemi.tsv", "/work/shared/kemi/kamailio-5.6.3-kemi.tsv"} {
		if ff, err := os.Open(p); err == nil {
			f = ff
			break
		}
	}
	if f == nil {
		t.Skip("Kamailio's KEMI list is not next to the checkout")
	}
	defer f.Close()
	type sig struct{ ret, params string }
	kam := map[string]map[string]sig{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 4 || strings.HasPrefix(cols[0], "#") {
			continue
		}
		if kam[cols[0]] == nil {
			kam[cols[0]] = map[string]sig{}
		}
		kam[cols[0]][cols[1]] = sig{cols[2], cols[3]}
	}
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	for _, ns := range []string{"pv", "pvx", "xlog", "kex"} {
		inst, ok := p.E.Module(ns)
		if !ok {
			t.Fatalf("module %s not loaded", ns)
		}
		have := 0
		var missing []string
		exports := map[string]any{}
		for _, ex := range inst.Exports() {
			exports[ex.Name] = ex.Fn
		}
		for name, s := range kam[ns] {
			fn, ok := exports[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			have++
			ret, params := goSig(fn)
			if ret != s.ret || params != s.params {
				t.Errorf("KSR.%s.%s: siplua %s(%s), Kamailio %s(%s)", ns, name, ret, params, s.ret, s.params)
			}
		}
		sort.Strings(missing)
		t.Logf("%s: %d of %d implemented; missing: %s", ns, have, len(kam[ns]), strings.Join(missing, ", "))
	}
}

// goSig renders an export's Go type in the list's terms: int, bool, xval; str and int parameters.
func goSig(fn any) (ret, params string) {
	ft := reflect.TypeOf(fn)
	var ps []string
	for i := 1; i < ft.NumIn(); i++ {
		switch ft.In(i).Kind() {
		case reflect.String:
			ps = append(ps, "str")
		case reflect.Int:
			ps = append(ps, "int")
		}
	}
	if len(ps) == 0 {
		ps = []string{"none"}
	}
	switch {
	case ft.NumOut() == 0:
		ret = "none"
	case ft.Out(0) == reflect.TypeOf(engine.Value{}), ft.Out(0).Kind() == reflect.Interface: // a value or a table
		ret = "xval"
	case ft.Out(0).Kind() == reflect.Int:
		ret = "int"
	case ft.Out(0).Kind() == reflect.Bool:
		ret = "bool"
	case ft.Out(0).Kind() == reflect.String:
		ret = "str"
	}
	return ret, strings.Join(ps, ", ")
}
