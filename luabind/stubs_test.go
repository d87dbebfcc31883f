package luabind_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/luabind/exportdoc"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// TestExportDocs keeps exportdocs_gen.go (parameter names and doc comments of every export, read from
// modules/*) in step with the modules' source. Rewrite it with: go test ./luabind -run TestExportDocs -update,
// then the stubs with: go test ./luabind -run TestStubsGolden -update.
func TestExportDocs(t *testing.T) {
	docs, err := exportdoc.Extract("../modules")
	if err != nil {
		t.Fatal(err)
	}
	want, err := exportdoc.GoSource(docs)
	if err != nil {
		t.Fatal(err)
	}
	// after an update, run TestStubsGolden -update too: the stubs are made from the compiled table
	enginetest.Golden(t, "exportdocs_gen.go", string(want), *update)
}

// TestExportDocsCover: the extractor finds the parameter names of every export that has parameters, so the
// stubs do not fall back to p1, p2 (exports made in a loop, kx's get_ruser ..., have none and no entry).
func TestExportDocsCover(t *testing.T) {
	docs, err := exportdoc.Extract("../modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, lm := range luabind.AllModules() {
		for _, ex := range lm.Inst.Exports() {
			d, ok := docs[lm.Name+"."+ex.Name]
			if !ok && reflect.TypeOf(ex.Fn).NumIn() > 1 {
				t.Errorf("KSR %s.%s: not found in the module's source", lm.Name, ex.Name)
				continue
			}
			for _, p := range d.Params {
				if p == "" {
					t.Errorf("KSR %s.%s: unnamed parameter in %v", lm.Name, ex.Name, d.Params)
				}
			}
		}
	}
}

// TestStubsGolden keeps scripts/types/ksr.lua (the stubs shipped for editors) equal to `siplua stubs`.
func TestStubsGolden(t *testing.T) {
	enginetest.Golden(t, "../scripts/types/ksr.lua", luabind.Stubs(luabind.AllModules()), *update)
}

// TestStubsLoad parses the stubs with gopher-lua (no LuaLS is packaged for npm or Debian here), runs them,
// and checks that they define exactly the KSR functions of every module, plus KSR.x.
func TestStubsLoad(t *testing.T) {
	src := luabind.Stubs(luabind.AllModules())
	if !strings.HasPrefix(src, "---@meta\n") {
		t.Fatal("stubs must start with ---@meta")
	}
	if _, err := parse.Parse(strings.NewReader(src), "ksr.lua"); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(src); err != nil {
		t.Fatal(err)
	}
	ksr := L.GetGlobal("KSR").(*lua.LTable)
	want := map[string]bool{"x.exit": true, "x.drop": true}
	for _, lm := range luabind.AllModules() {
		for _, ex := range lm.Inst.Exports() {
			if lm.TopLevel {
				want[ex.Name] = true
			} else {
				want[lm.Name+"."+ex.Name] = true
			}
		}
	}
	got := map[string]bool{}
	ksr.ForEach(func(k, v lua.LValue) {
		switch v := v.(type) {
		case *lua.LFunction:
			got[k.String()] = true
		case *lua.LTable:
			v.ForEach(func(k2, v2 lua.LValue) {
				if _, ok := v2.(*lua.LFunction); ok {
					got[k.String()+"."+k2.String()] = true
				}
			})
		}
	})
	for n := range want {
		if !got[n] {
			t.Errorf("stubs lack KSR.%s", n)
		}
	}
	for n := range got {
		if !want[n] {
			t.Errorf("stubs have KSR.%s, which no module exports", n)
		}
	}
	// every function carries its types: one @param per parameter and a @return unless void
	for _, want := range []string{
		"---@param code integer\n---@param reason string\n---@return integer rc # Kamailio's return code",
		"function KSR.sl.sl_send_reply(code, reason) end",
		"---@return boolean # A Lua boolean",
		"function KSR.is_method(",
		"---@return string|integer|nil value",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("stubs lack %q", want)
		}
	}
}

// TestKamailioRCNamesExports: every return-code note of the stubs belongs to an export that exists.
func TestKamailioRCNamesExports(t *testing.T) {
	have := map[string]bool{}
	for _, lm := range luabind.AllModules() {
		for _, ex := range lm.Inst.Exports() {
			have[lm.Name+"."+ex.Name] = true
		}
	}
	for k := range luabind.KamailioRC {
		if !have[k] {
			t.Errorf("kamailioRC has %s, which no module exports", k)
		}
	}
}
