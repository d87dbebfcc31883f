package luabind_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind"
	_ "github.com/siplua/siplua/modules/all"
)

var update = flag.Bool("update", false, "rewrite the KSR reference block in README.md")

const (
	beginMarker = "<!-- ksr:begin -->"
	endMarker   = "<!-- ksr:end -->"
)

// TestReadmeKSR keeps the README's KSR function list equal to the registered modules' exports. Rewrite it
// with: go test ./luabind -run TestReadmeKSR -update
func TestReadmeKSR(t *testing.T) {
	const path = "../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("README.md must exist and hold the KSR reference: %v", err)
	}
	b := bytes.Index(readme, []byte(beginMarker))
	e := bytes.Index(readme, []byte(endMarker))
	if b < 0 || e < b {
		t.Fatalf("README.md has no %s ... %s block for the KSR reference", beginMarker, endMarker)
	}
	want := "\n" + luabind.Reference(luabind.AllModules())
	got := string(readme[b+len(beginMarker) : e])
	if got == want {
		return
	}
	if *update {
		if os.Getenv("CI") == "true" {
			t.Fatal("README.md is never rewritten under CI=true (drop -update)")
		}
		out := append([]byte{}, readme[:b+len(beginMarker)]...)
		out = append(out, want...)
		out = append(out, readme[e:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		// still a failure: the change is reviewed, and the next run (without -update) passes
		t.Errorf("README.md KSR block was stale and has been rewritten; run again without -update\n%s", diffLines(got, want))
		return
	}
	t.Errorf("README.md KSR block is stale; run: go test ./luabind -run TestReadmeKSR -update\n%s", diffLines(got, want))
}

func diffLines(got, want string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

func TestSignature(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   any
		want string
	}{
		{"KSR.sl.sl_send_reply", exportFn(t, "sl", "sl_send_reply"), "int KSR.sl.sl_send_reply(int, str)"},
		{"KSR.is_method", exportFn(t, "core", "is_method"), "bool KSR.is_method(str)"},
		{"KSR.pv.get", exportFn(t, "pv", "get"), "str|int|nil KSR.pv.get(str)"},
		{"KSR.hdr.get", exportFn(t, "hdr", "get"), "str|nil KSR.hdr.get(str)"},
		{"KSR.pv.sets", exportFn(t, "pv", "sets"), "bool KSR.pv.sets(str, str)"},
		{"KSR.kx.get_srcport", exportFn(t, "kx", "get_srcport"), "int KSR.kx.get_srcport()"},
		{"KSR.info", exportFn(t, "core", "info"), "void KSR.info(str)"},
	} {
		if got := luabind.Signature(c.name, c.fn); got != c.want {
			t.Errorf("Signature(%s) = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestAllExportsSupported: every export of every registered module has a type the adapter knows, a name
// and no duplicate, so no configuration can fail at state creation with "unsupported type".
func TestAllExportsSupported(t *testing.T) {
	n := 0
	for _, lm := range luabind.AllModules() {
		seen := map[string]bool{}
		for _, ex := range lm.Inst.Exports() {
			n++
			if ex.Name == "" || strings.ContainsAny(ex.Name, ". ") {
				t.Errorf("module %s: bad export name %q", lm.Name, ex.Name)
			}
			if seen[ex.Name] {
				t.Errorf("module %s: export %s declared twice", lm.Name, ex.Name)
			}
			seen[ex.Name] = true
			if !luabind.Supported(ex.Fn) {
				t.Errorf("KSR.%s.%s: type %T is not supported by luabind/adapt.go", lm.Name, ex.Name, ex.Fn)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d exports registered; modules/all not linked?", n)
	}
}

func TestReferenceShape(t *testing.T) {
	ref := luabind.Reference(luabind.AllModules())
	for _, want := range []string{"### KSR (core)\n", "### KSR.x\n", "### KSR.pv\n", "- `bool KSR.is_method(str)`\n",
		"- `int KSR.maxfwd.process_maxfwd(int)`\n", "- `str|nil KSR.kx.get_ua()`\n", "- `int KSR.hdr.append_to_reply(str)`\n"} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %q:\n%s", want, ref)
		}
	}
}

func exportFn(t *testing.T, mod, name string) any {
	t.Helper()
	for _, lm := range luabind.AllModules() {
		if lm.Name != mod {
			continue
		}
		for _, ex := range lm.Inst.Exports() {
			if ex.Name == name {
				return ex.Fn
			}
		}
	}
	t.Fatalf("no export %s.%s", mod, name)
	return nil
}
