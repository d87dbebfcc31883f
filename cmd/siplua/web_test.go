package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestWebStatusPage: the binary serves the status page named by [web] listen, behind basic auth, with
// the modules' pages, and stops it on SIGTERM.
func TestWebStatusPage(t *testing.T) {
	port := enginetest.FreePort(t)
	cfg := e2eConfig(t, e2eAbs(t, "../../scripts/default.lua"), fmt.Sprintf(`[modules.usrloc]
[modules.registrar]
[ctl]
enabled = false
[web]
listen = "127.0.0.1:%d"
user = "ops"
password = "pw"
`, port))
	p := e2eStart(t, "-config", cfg)
	if _, ok := p.Log.wait(regexp.MustCompile(`msg="web status page".*url=http://127\.0\.0\.1:`), 5*time.Second); !ok {
		t.Fatalf("no web status page line in the log:\n%s", p.Log)
	}
	get := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/", "", ""); code != 401 {
		t.Errorf("without credentials: %d, want 401", code)
	}
	code, body := get("/", "ops", "pw")
	if code != 200 || !strings.Contains(body, "udp:"+p.UDP.String()) || !strings.Contains(body, `href="/registrations"`) {
		t.Errorf("overview: %d\n%s", code, body)
	}
	if code, body := get("/registrations", "ops", "pw"); code != 200 || !strings.Contains(body, "AOR(s)") {
		t.Errorf("registrations: %d\n%s", code, body)
	}
}

// TestWebConfigRefused: a status page on every interface without auth is a configuration error that
// siplua -c reports with its line.
func TestWebConfigRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[web]\nlisten = \"0.0.0.0:8080\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-c", "-config", cfg}, &stdout, &stderr)
	want := cfg + ":2: web.listen: \"0.0.0.0:8080\" is not a loopback address: set user and password, or token"
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("siplua -c: exit %d, stderr %q; want exit 1 with %q", code, stderr.String(), want)
	}
}
