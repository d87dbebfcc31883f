package web_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/web"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestBrowser: Debian's chromium (playwright-core) opens the overview while SIPp sends OPTIONS and sees
// the rate chart move; a SIPp user registers and is found on the registrations page; the reload button
// with a broken script shows the error with its line. Screenshots of each page go to a temp dir (logged);
// WEB_SCREENSHOTS=dir keeps them there instead, and HOLD_SECONDS=n lets the chart fill first (how
// scripts/browser/screenshots/overview.png is made: WEB_SCREENSHOTS=/tmp/s HOLD_SECONDS=20).
func TestBrowser(t *testing.T) {
	b := enginetest.NeedBrowser(t)
	p := enginetest.Start(t, testConfig, testScript)
	user, pass := "admin", "pw-"+enginetest.RandHex(4)
	s, err := web.Listen(p.E, web.Options{Version: "test",
		Config:   engine.WebConfig{Listen: "127.0.0.1:0", User: user, Password: pass, AllowActions: true},
		Commands: web.ModuleCommands(p.E.Config().Mods), Reload: p.Reload, Log: p.E.Log()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { _ = s.Close() })
	reg := enginetest.StartSIPp(t, "register", "testdata/register-uac.xml", p.UDP.String(), "-m", "1")
	if err := reg.Wait(15 * time.Second); err != nil {
		t.Fatalf("sipp register: %v\n%s", err, reg.Output())
	}
	// load for the chart: OPTIONS from 100/s, 20/s more every 2 s, until the test ends (no -rate_max:
	// SIPp quits when it reaches it)
	enginetest.StartSIPp(t, "load", "testdata/options-uac.xml", p.UDP.String(), "-r", "100",
		"-rate_increase", "20", "-fd", "2", "-timeout", "30s")

	shots := os.Getenv("WEB_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	out := b.Run(t, 90*time.Second, "testdata/browser.js",
		"BASE_URL=http://"+s.Addr().String(), "WEB_USER="+user, "WEB_PASS="+pass, "SHOT_DIR="+shots,
		"SIPP_AOR=sipp-web", "SCRIPT_PATH="+filepath.Join(p.Dir, "script.lua"),
		"BROKEN_SCRIPT=function ksr_request_route()\n  local x = 1\n  if x then\nend\n", "EXPECT_WHERE=script.lua:5")
	t.Log(out)
	t.Logf("screenshots in %s", shots)
	if !strings.Contains(out, "browser test ok") {
		t.Fatal("browser script did not finish")
	}
}
