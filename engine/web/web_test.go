package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/web"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// testConfig loads the modules whose pages the status page shows.
const testConfig = `[core]
workers = 2
[modules.sl]
[modules.tm]
[modules.usrloc]
nat_bflag = 6
[modules.registrar]
[modules.htable]
[modules.htable.tables.ipban]
autoexpire = 300
[modules.dispatcher]
ds_ping_latency_stats = 1
[[modules.dispatcher.dst]]
set = 1
uri = "sip:127.0.0.1:5999"
attrs = "weight=50"
[[modules.dispatcher.dst]]
set = 1
uri = "sip:127.0.0.2:5999"
`

// testScript registers, fails on purpose for R-URI user "boom" (line 10) and fills the htable.
const testScript = `function ksr_request_route()
  if KSR.is_REGISTER() then
    if string.find(KSR.pv.get("$ua") or "", "nat") then KSR.setbflag(6) end
    KSR.registrar.save("location", 0)
    return
  end
  if KSR.is_INVITE() then KSR.tm.t_relay() return end
  KSR.htable.sht_sets("ipban", KSR.pv.get("$si"), "seen")
  if KSR.pv.get("$rU") == "boom" then
    error("boom on purpose")
  end
  KSR.sl.sl_send_reply(200, "OK")
end
`

type fixture struct {
	p   *enginetest.Proxy
	srv *httptest.Server
	c   *enginetest.Client
}

func start(t *testing.T, wc engine.WebConfig) *fixture {
	t.Helper()
	p := enginetest.Start(t, testConfig, testScript)
	h, err := web.New(p.E, web.Options{Version: "test", Config: wc, Commands: web.ModuleCommands(p.E.Config().Mods),
		Reload: p.Reload, Interval: 50 * time.Millisecond, Log: p.E.Log()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{p: p, srv: srv, c: p.UDPClient(t)}
}

func (f *fixture) register(t *testing.T, user, ua string) {
	t.Helper()
	f.c.Send(f.c.Request("REGISTER", "sip:"+user+"@example.com", "Contact: <sip:"+user+"@127.0.0.1:5098>;expires=600",
		"User-Agent: "+ua))
	if r := f.c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		t.Fatalf("REGISTER %s: %d %s", user, r.StatusCode, r.Reason)
	}
}

// command runs a module's ctl command and returns its result as JSON.
func command(t *testing.T, p *enginetest.Proxy, name string, args ...string) string {
	t.Helper()
	for _, c := range web.ModuleCommands(p.E.Config().Mods) {
		if c.Name == name {
			out, err := c.Fn(args)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, _ := json.Marshal(out)
			return string(b)
		}
	}
	t.Fatalf("no command %s", name)
	return ""
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPages renders every page against a running engine with real state: registrations made with
// REGISTER, a script error, a failed reload, dispatcher sets and an htable item.
func TestPages(t *testing.T) {
	f := start(t, engine.WebConfig{})
	f.register(t, "alice", "softphone-nat/1.0")
	f.register(t, "bob", "deskphone/2.0")
	f.c.Send(f.c.Request("OPTIONS", "sip:boom@"+f.p.UDP.String()))
	if r := f.c.RecvResponse(2 * time.Second); r.StatusCode != 500 {
		t.Fatalf("boom: %d, want 500", r.StatusCode)
	}
	// an INVITE relayed to a port nobody answers on: one server transaction and one branch stay alive
	f.c.Send(f.c.Request("INVITE", fmt.Sprintf("sip:carol@127.0.0.1:%d", enginetest.FreePort(t))))
	if r := f.c.RecvResponse(2 * time.Second); r.StatusCode != 100 {
		t.Fatalf("INVITE: %d, want 100 Trying", r.StatusCode)
	}
	f.p.WriteFile(t, "script.lua", "function ksr_request_route()\n  local x = \n")
	if _, err := f.p.Reload(); err == nil {
		t.Fatal("reload of a broken script succeeded")
	}
	for _, tc := range []struct {
		path  string
		code  int
		want  []string
		avoid []string
	}{
		{"/", 200, []string{"Overview", "udp:" + f.p.UDP.String(), "tcp:" + f.p.TCP.String(), `id="rate-chart"`,
			"REGISTER", "reloads failed", `href="/registrations"`, `href="/dispatcher"`, `href="/htable"`,
			"usrloc_contacts", `id="transactions"`, "<th>tm_transactions</th><td>1</td>", "<th>tm_branches</th><td>1</td>"}, []string{`href="/dialogs"`}},
		{"/script", 200, []string{"Reload history", "failed", "script.lua:3", "Last route errors", "script.lua:10",
			"boom on purpose", "OPTIONS"}, []string{`action="/action/reload"`}},
		{"/registrations", 200, []string{"<td>alice</td>", "<td>bob</td>", "sip:alice@127.0.0.1:5098",
			"softphone-nat/1.0", ">NAT<", "deskphone/2.0"}, []string{"/action/unregister"}},
		{"/registrations?aor=bob", 200, []string{"<td>bob</td>", `value="bob"`}, []string{"<td>alice</td>"}},
		{"/registrations?aor=nobody", 200, []string{"no contact for this search"}, nil},
		{"/dispatcher", 200, []string{"Set 1", "sip:127.0.0.1:5999", "sip:127.0.0.2:5999", "active", "weight=50",
			"0.0 / 0.0"}, // the latency column (no ping answered yet)
			[]string{"/action/ds-inactive"}},
		{"/htable", 200, []string{"ipban"}, nil},
		{"/htable?table=ipban", 200, []string{"127.0.0.1", "seen"}, nil},
		{"/htable?table=nosuch", 200, []string{"nosuch"}, nil},
		{"/dialogs", 404, nil, nil}, // no dialog module: no panel
		{"/nosuch", 404, nil, nil},
		{"/assets/app.js", 200, []string{"EventSource"}, nil},
		{"/assets/style.css", 200, []string{"--accent"}, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, f.srv.Client(), f.srv.URL+tc.path)
			if code != tc.code {
				t.Fatalf("status %d, want %d\n%s", code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q in\n%s", w, body)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(body, a) {
					t.Errorf("unexpected %q (read-only page)", a)
				}
			}
		})
	}
	// bob's contact has no NAT flag: exactly one NAT badge
	_, body := get(t, f.srv.Client(), f.srv.URL+"/registrations")
	if n := strings.Count(body, `badge warn">NAT<`); n != 1 {
		t.Errorf("NAT badges: %d, want 1", n)
	}
}

// TestPagesWithoutModules: a configuration with no module commands shows the overview and the script page
// only; the module pages are absent, not broken.
func TestPagesWithoutModules(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", "function ksr_request_route() KSR.sl.sl_send_reply(200, 'OK') end")
	h, err := web.New(p.E, web.Options{Version: "test", Commands: web.ModuleCommands(p.E.Config().Mods)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for path, want := range map[string]int{"/": 200, "/script": 200, "/registrations": 404, "/dispatcher": 404, "/htable": 404, "/dialogs": 404} {
		if code, _ := get(t, srv.Client(), srv.URL+path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
	_, body := get(t, srv.Client(), srv.URL+"/")
	if strings.Contains(body, `href="/registrations"`) || strings.Contains(body, `id="transactions"`) {
		t.Error("registrations link without usrloc, or transactions without tm")
	}
}

// readEvents reads n server-sent events of type sample.
func readEvents(t *testing.T, body io.Reader, n int, each func(map[string]float64)) {
	t.Helper()
	sc := bufio.NewScanner(body)
	event := ""
	for n > 0 && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "sample":
			var s map[string]float64
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			each(s)
			n--
		}
	}
	if n > 0 {
		t.Fatalf("stream ended with %d events to go: %v", n, sc.Err())
	}
}

// TestEvents: the stream sends a sample per interval; while SIP requests arrive its request rate is
// above zero, and the counters it reads are the engine's.
func TestEvents(t *testing.T) {
	f := start(t, engine.WebConfig{})
	resp, err := f.srv.Client().Get(f.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // traffic while the stream runs
		defer close(done)
		c := f.p.UDPClient(t)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Send(c.Request("OPTIONS", "sip:ping@"+f.p.UDP.String()))
			_, _ = c.TryRecv(time.Second)
		}
	}()
	var maxIn float64
	var gen float64
	readEvents(t, resp.Body, 8, func(s map[string]float64) {
		maxIn = max(maxIn, s["in"])
		gen = s["gen"]
		if s["t"] == 0 {
			t.Errorf("sample without time: %v", s)
		}
	})
	close(stop)
	<-done
	if maxIn <= 0 {
		t.Errorf("request rate stayed 0 while requests arrived")
	}
	if gen != 1 {
		t.Errorf("generation %v, want 1", gen)
	}
	if resp, err := f.srv.Client().Post(f.srv.URL+"/events", "text/plain", nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST /events: %v %v, want 405", resp.StatusCode, err)
	}
}

// TestAuth: with basic auth or a token configured, every path (pages, assets, events, actions) needs the
// credentials.
func TestAuth(t *testing.T) {
	f := start(t, engine.WebConfig{User: "admin", Password: "s3cret", Token: "tok-123", AllowActions: true})
	basic := func(u, p string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	for _, path := range []string{"/", "/script", "/registrations", "/events", "/assets/app.js"} {
		for _, tc := range []struct {
			name, auth string
			want       int
		}{
			{"none", "", 401},
			{"wrong password", basic("admin", "nope"), 401},
			{"wrong user", basic("root", "s3cret"), 401},
			{"wrong token", "Bearer tok-124", 401},
			{"basic", basic("admin", "s3cret"), 200},
			{"token", "Bearer tok-123", 200},
		} {
			req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", path, tc.name, resp.StatusCode, tc.want)
			}
			if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", path, tc.name)
			}
		}
	}
	// an action without credentials is refused before anything else
	resp, err := f.srv.Client().PostForm(f.srv.URL+"/action/reload", url.Values{"csrf": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("action without auth: %d, want 401", resp.StatusCode)
	}
}

// TestLoopbackHost: without auth the page answers only to loopback Host names (a DNS-rebound name is
// refused).
func TestLoopbackHost(t *testing.T) {
	f := start(t, engine.WebConfig{})
	for host, want := range map[string]int{"": 200, "localhost:8080": 200, "[::1]:80": 200, "evil.example:8080": 403, "10.0.0.1": 403} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

var csrfRe = func(body string) string {
	_, rest, ok := strings.Cut(body, `name="csrf" value="`)
	if !ok {
		return ""
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func noRedirect(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// TestActions: the buttons call the same commands as siplua ctl, only by POST with the page's CSRF token,
// same-origin, and only with allow_actions.
func TestActions(t *testing.T) {
	f := start(t, engine.WebConfig{AllowActions: true})
	c := noRedirect(f.srv.Client())
	f.register(t, "alice", "ua-a")
	f.register(t, "bob", "ua-b")
	_, page := get(t, c, f.srv.URL+"/registrations")
	tok := csrfRe(page)
	if len(tok) != 64 {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	post := func(path string, form url.Values, hdr ...string) (int, string) {
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	unreg := url.Values{"aor": {"alice"}, "contact": {"sip:alice@127.0.0.1:5098"}, "table": {"location"}}
	with := func(v url.Values, tok string) url.Values {
		out := url.Values{"csrf": {tok}}
		for k, x := range v {
			out[k] = x
		}
		return out
	}
	// refused: no token, a wrong token, cross-site, GET
	for name, code := range map[string]int{
		"no token":    func() int { c, _ := post("/action/unregister", unreg); return c }(),
		"wrong token": func() int { c, _ := post("/action/unregister", with(unreg, strings.Repeat("0", 64))); return c }(),
		"cross-site": func() int {
			c, _ := post("/action/unregister", with(unreg, tok), "Sec-Fetch-Site", "cross-site")
			return c
		}(),
	} {
		if code != 403 {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if code, _ := get(t, c, f.srv.URL+"/action/unregister?csrf="+tok); code != 405 {
		t.Errorf("GET action: %d, want 405", code)
	}
	if _, body := get(t, c, f.srv.URL+"/registrations"); !strings.Contains(body, "<td>alice</td>") {
		t.Fatal("a refused action removed alice")
	}
	// accepted: unregister alice's contact
	code, loc := post("/action/unregister", with(unreg, tok), "Sec-Fetch-Site", "same-origin")
	if code != 303 || !strings.Contains(loc, "ok=") {
		t.Fatalf("unregister: %d %s", code, loc)
	}
	if _, body := get(t, c, f.srv.URL+"/registrations"); strings.Contains(body, "<td>alice</td>") || !strings.Contains(body, "<td>bob</td>") {
		t.Errorf("after unregister alice: alice still there or bob gone:\n%s", body)
	}
	if dump := command(t, f.p, "ul.dump"); strings.Contains(dump, `"AoR":"alice"`) || !strings.Contains(dump, `"AoR":"bob"`) {
		t.Errorf("ul.dump after unregister alice: %s", dump)
	}
	// set a dispatcher destination inactive
	code, loc = post("/action/ds-inactive", with(url.Values{"group": {"1"}, "uri": {"sip:127.0.0.2:5999"}}, tok))
	if code != 303 || !strings.Contains(loc, "ok=") {
		t.Fatalf("ds-inactive: %d %s", code, loc)
	}
	_, body := get(t, c, f.srv.URL+"/dispatcher")
	if !strings.Contains(body, `<span class="badge inactive">inactive</span>`) || !strings.Contains(body, "/action/ds-active") {
		t.Errorf("destination not inactive:\n%s", body)
	}
	// the module agrees: dispatcher.list shows the destination's flags as I (inactive)
	if flags := command(t, f.p, "dispatcher.list"); !strings.Contains(flags, `"FLAGS":"IX"`) {
		t.Errorf("dispatcher.list after set inactive: %s", flags)
	}
	code, loc = post("/action/ds-active", with(url.Values{"group": {"1"}, "uri": {"sip:127.0.0.2:5999"}}, tok))
	if code != 303 || !strings.Contains(loc, "ok=") {
		t.Fatalf("ds-active: %d %s", code, loc)
	}
	if _, body = get(t, c, f.srv.URL+"/dispatcher"); strings.Contains(body, `badge inactive`) {
		t.Errorf("destination still inactive after set active")
	}
	// reload: ok, then broken (the error comes back in the redirect and in the history)
	code, loc = post("/action/reload", with(nil, tok))
	if code != 303 || !strings.Contains(loc, "generation+2") {
		t.Fatalf("reload: %d %s", code, loc)
	}
	f.p.WriteFile(t, "script.lua", "function ksr_request_route()\n\n  if then end\nend\n")
	code, loc = post("/action/reload", with(nil, tok))
	if code != 303 || !strings.Contains(loc, "err=") {
		t.Fatalf("broken reload: %d %s", code, loc)
	}
	u, _ := url.Parse(loc)
	if msg := u.Query().Get("err"); !strings.Contains(msg, "script.lua:3") {
		t.Errorf("reload error %q lacks script.lua:3", msg)
	}
	_, body = get(t, c, f.srv.URL+loc)
	if !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, "script.lua:3") {
		t.Errorf("script page after a failed reload:\n%s", body)
	}
	if f.p.E.Generation() != 2 {
		t.Errorf("generation %d after a failed reload, want 2", f.p.E.Generation())
	}
}

// TestActionsOff: without allow_actions no form is shown and a POST with a valid token is refused.
func TestActionsOff(t *testing.T) {
	f := start(t, engine.WebConfig{})
	f.register(t, "alice", "ua")
	_, body := get(t, f.srv.Client(), f.srv.URL+"/script")
	if strings.Contains(body, "csrf") {
		t.Fatal("read-only page has a form")
	}
	resp, err := noRedirect(f.srv.Client()).PostForm(f.srv.URL+"/action/reload", url.Values{"csrf": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("action with allow_actions off: %d, want 403", resp.StatusCode)
	}
	if f.p.E.Generation() != 1 {
		t.Error("reloaded although actions are off")
	}
}

// TestListen: Listen binds, serves and closes, and an open event stream ends with Close.
func TestListen(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", "function ksr_request_route() end")
	s, err := web.Listen(p.E, web.Options{Config: engine.WebConfig{Listen: "127.0.0.1:0"}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	resp, err := http.Get(fmt.Sprintf("http://%s/events", s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	readEvents(t, resp.Body, 2, func(map[string]float64) {})
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(done) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after Close")
	}
}

// TestHistoryRings: the script page keeps the last 64 route errors (with the total) and the last 32 reloads,
// newest first.
func TestHistoryRings(t *testing.T) {
	f := start(t, engine.WebConfig{})
	var callIDs []string
	for i := 0; i < 70; i++ {
		req := f.c.Request("OPTIONS", "sip:boom@"+f.p.UDP.String())
		_, rest, _ := strings.Cut(req, "Call-ID: ")
		id, _, _ := strings.Cut(rest, "\r\n")
		callIDs = append(callIDs, id)
		f.c.Send(req)
		if r := f.c.RecvResponse(2 * time.Second); r.StatusCode != 500 {
			t.Fatalf("boom %d: %d", i, r.StatusCode)
		}
	}
	for i := 0; i < 35; i++ {
		if _, err := f.p.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	_, body := get(t, f.srv.Client(), f.srv.URL+"/script")
	if !strings.Contains(body, "(70 since start)") {
		t.Errorf("route error total missing")
	}
	_, errs, _ := strings.Cut(body, `id="route-error-table"`)
	if n := strings.Count(errs, "boom on purpose"); n != 64 {
		t.Errorf("route errors shown: %d, want 64", n)
	}
	// 70 errors in a ring of 64: the first 6 are gone, the newest comes first
	if i, j := strings.Index(errs, callIDs[69]), strings.Index(errs, callIDs[5]); i < 0 || j >= 0 || i > strings.Index(errs, callIDs[68]) {
		t.Errorf("want the newest error first and the 6th gone: %d %d", i, j)
	}
	if !strings.Contains(errs, callIDs[6]) {
		t.Errorf("the 7th error is gone too")
	}
	hist, _, _ := strings.Cut(body, `id="route-errors"`)
	if n := strings.Count(hist, `<tr class="ok">`); n != 32 {
		t.Errorf("reloads shown: %d, want 32", n)
	}
	if i, j := strings.Index(hist, "<td>36</td>"), strings.Index(hist, "<td>4</td>"); i < 0 || j >= 0 {
		t.Errorf("want the newest reload (generation 36) and not generation 4: %d %d", i, j)
	}
}
