package pv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
)

// TestCheckReportsPVs: siplua -c reports unknown and invalid literal pseudo-variables in KSR.pv.*, xlog
// formats and pvx.evalx, with their line, and accepts the valid ones (comments and strings are skipped).
func TestCheckReportsPVs(t *testing.T) {
	dir := t.TempDir()
	script := `function ksr_request_route()
	local a = KSR.pv.get("$ru")
	local b = KSR.pv.get("$(hdr(Via)[1]{s.len})")
	local c = KSR.pv.get("$nosuch")
	KSR.xlog.xinfo("ok $ci $(ru{uri.user})\n")
	KSR.xlog.xlog("L_INFO", "bad $alsonot\n")
	KSR.pvx.evalx("$var(x)", "$(ru{s.nosuch})")
	-- KSR.pv.get("$incomment")
	local d = "KSR.pv.get('$instring')"
	KSR.pv.sets('$var(x)', "v")
	KSR.pv.get("$(ci{s.substr,$unknownidx,1})")
end
`
	if err := os.WriteFile(filepath.Join(dir, "s.lua"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.toml"), []byte("[lua]\nscript = \"s.lua\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfigFile(filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range luabind.Check(cfg) {
		got = append(got, p.Error())
	}
	want := []string{":4: KSR.pv.get: unknown pseudo-variable $nosuch",
		":6: KSR.xlog.xlog: unknown pseudo-variable $alsonot",
		":7: KSR.pvx.evalx: pseudo-variable \"$(ru{s.nosuch})\": unknown transformation {s.nosuch}",
		":11: KSR.pv.get: unknown pseudo-variable $unknownidx"}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("problem %d = %s, want it to contain %s", i, got[i], want[i])
		}
	}
}
