package transport_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// startWebRTC runs scripts/examples/webrtc.lua with webrtc.toml's modules and settings, on random ports
// and a certificate made for the test; alice and bob are in users.csv.
func startWebRTC(t *testing.T) *enginetest.Proxy {
	t.Helper()
	script, err := os.ReadFile("../../scripts/examples/webrtc.lua")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("../../scripts/examples/webrtc.toml")
	if err != nil {
		t.Fatal(err)
	}
	pk := newPKI(t)
	text := string(cfg)
	for _, r := range [][2]string{
		{`listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061", "ws:127.0.0.1:8080", "wss:127.0.0.1:8443"]`,
			`listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0", "ws:127.0.0.1:0", "wss:127.0.0.1:0"]`},
		{`certificate = "webrtc.pem"`, `certificate = "cert.pem"`},
		{`private_key = "webrtc.key"`, `private_key = "key.pem"`},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("webrtc.toml has no %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	files := map[string]string{
		"webrtc.lua": string(script),
		"users.csv":  "user,domain,password,ha1,ha1_sha256\nalice,sip.example,alice-secret,,\nbob,sip.example,bob-secret,,\n",
	}
	for k, v := range pk.files {
		files[k] = v
	}
	return enginetest.StartFiles(t, text, files)
}

// servePage serves the agent page and SIP.js (its ES modules as npm ships them: no bundler needed).
func servePage(t *testing.T, b enginetest.Browser) string {
	t.Helper()
	agent, err := os.ReadFile(filepath.Join("testdata", "browser", "agent.js"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/sipjs/", http.StripPrefix("/sipjs/", http.FileServer(http.Dir(filepath.Join(b.Dir, "node_modules", "sip.js")))))
	mux.HandleFunc("/agent.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(agent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>siplua</title><script src=\"/agent.js\"></script>"))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL + "/"
}

// TestBrowserCallOverWSS: two SIP.js users in Chromium register over WSS with digest auth (webrtc.lua),
// alice calls bob through siplua (WebRTC offer and answer, fake media devices), both see the call
// established, alice hangs up and both see it end.
func TestBrowserCallOverWSS(t *testing.T) {
	b := enginetest.NeedBrowser(t)
	p := startWebRTC(t)
	page := servePage(t, b)
	out := b.Run(t, 90*time.Second, filepath.Join("testdata", "browser", "calls.js"),
		"MODE=b2b", "TRACE="+os.Getenv("TRACE"), "PAGE="+page, "SERVER=wss://"+p.Addr(engine.WSS).String()+"/")
	for _, want := range []string{"alice registered", "bob registered", "call established", "call ended by bye"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
}

// TestBrowserCallsSIPpUAS: a SIP.js user on plain WS registers and calls a SIPp UAS on UDP through
// siplua, then hangs up; SIPp must see the whole call (INVITE, ACK, BYE).
func TestBrowserCallsSIPpUAS(t *testing.T) {
	b := enginetest.NeedBrowser(t)
	p := startWebRTC(t)
	page := servePage(t, b)
	uas := startUAS(t)
	out := b.Run(t, 90*time.Second, filepath.Join("testdata", "browser", "calls.js"),
		"MODE=uas", "TRACE="+os.Getenv("TRACE"), "PAGE="+page, "SERVER=ws://"+p.Addr(engine.WS).String()+"/", "TARGET=sip:service@"+uas.Addr())
	for _, want := range []string{"alice registered", "call established", "call ended by bye"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	if err := uas.Wait(15 * time.Second); err != nil {
		t.Fatalf("SIPp UAS: %v", err)
	}
}
