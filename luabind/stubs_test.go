package luabind_test

import (
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

// TestExportDocsExtract: the extractor reads parameter names from each way modules write an export: a
// method value, a package function, a function literal, a local function variable, a function that returns
// the export (with named results or a returned literal). Exports made in loops (names computed) have no
// entry, and the stubs name their parameters p1, p2.
func TestExportDocsExtract(t *testing.T) {
	docs, err := exportdoc.Extract("../modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key    string
		params string
		doc    string // a part of the doc comment
	}{
		{"sl.sl_send_reply", "code reason", ""},                                          // method value
		{"maxfwd.process_maxfwd", "limit", "mf_process_maxfwd_header"},                   // method value with its doc
		{"corex.append_branch_uri_q", "uri q", "Adds a destination for a parallel fork"}, // package function, Go name dropped
		{"core.forward_uri", "uri", ""},                                                  // function literal
		{"auth_db.www_authenticate", "realm table", ""},                                  // local function variable
		{"dispatcher.ds_select_dst", "set alg", ""},                                      // factory with a named result type
		{"core.log", "level s", ""},                                                      // method returning a literal
	} {
		d, ok := docs[c.key]
		if !ok {
			t.Errorf("%s: not extracted", c.key)
			continue
		}
		if got := strings.Join(d.Params, " "); got != c.params {
			t.Errorf("%s: params %q, want %q", c.key, got, c.params)
		}
		if !strings.Contains(d.Doc, c.doc) {
			t.Errorf("%s: doc %q lacks %q", c.key, d.Doc, c.doc)
		}
	}
	named := 0
	for _, d := range docs {
		if len(d.Params) > 0 {
			named++
		}
	}
	if named < 100 {
		t.Errorf("only %d exports with parameter names: the extractor misses a common form", named)
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
	for _, name := range luabind.AppLuaFunctions {
		want["app_lua."+name] = true
	}
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
