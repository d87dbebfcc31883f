// Package web is siplua's built-in status page: server-rendered HTML (html/template, embedded assets, no
// build step) with a live message-rate chart fed by server-sent events. It reads the engine's atomic
// counters and calls the same module commands as `siplua ctl` (ul.dump, dispatcher.list, htable.dump, …),
// found by name, so it never imports a module and never holds a lock a route worker needs beyond what the
// command itself takes for its snapshot.
package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options wire the page to what cmd/siplua owns.
type Options struct {
	Version string
	Config  engine.WebConfig
	// Reload is what core.reload runs (reads the configuration file again); nil reloads the running
	// configuration with the script read again.
	Reload func() (warnings []string, err error)
	// Commands are the module control commands (ModuleCommands), called by name.
	Commands []engine.Command
	Log      *slog.Logger
	// Interval is the period of the server-sent events (default 1 s).
	Interval time.Duration
}

// ModuleCommands returns the control commands of every loaded module that offers some.
func ModuleCommands(mods *engine.ModuleSet) []engine.Command {
	var out []engine.Command
	if mods == nil {
		return nil
	}
	for _, l := range mods.List {
		if c, ok := l.Inst.(engine.Commander); ok {
			out = append(out, c.RPC()...)
		}
	}
	return out
}

// handler serves the pages.
type handler struct {
	e        *engine.Engine
	o        Options
	log      *slog.Logger
	cmds     map[string]engine.Command
	pages    map[string]*template.Template
	csrf     string // the form token: an HMAC of a per-process secret, the same for every page of this run
	loopback bool   // listening on loopback without auth: check Host against DNS rebinding
	streams  atomic.Int32
}

// Server is the HTTP listener of the status page.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds o.Config.Listen.
func Listen(e *engine.Engine, o Options) (*Server, error) {
	h, err := newHandler(e, o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Config.Listen)
	if err != nil {
		return nil, fmt.Errorf("web listen: %w", err)
	}
	return &Server{ln: ln, log: h.log,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers until Close.
func (s *Server) Serve() {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("web server", "err", err)
	}
}

// Close stops the server and ends the event streams.
func (s *Server) Close() error { return s.srv.Close() }

// New returns the page's http.Handler (Listen serves it; tests use it with httptest).
func New(e *engine.Engine, o Options) (http.Handler, error) {
	h, err := newHandler(e, o)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func newHandler(e *engine.Engine, o Options) (*handler, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Reload == nil {
		o.Reload = func() ([]string, error) { return e.Reload(e.Current()) }
	}
	h := &handler{e: e, o: o, log: o.Log.With("module", "web"), cmds: map[string]engine.Command{}}
	for _, c := range o.Commands {
		if _, dup := h.cmds[c.Name]; !dup {
			h.cmds[c.Name] = c
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("web: csrf secret: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("siplua-web-csrf"))
	h.csrf = hex.EncodeToString(mac.Sum(nil))
	h.loopback = !o.Config.HasAuth()
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	return h, nil
}

var funcs = template.FuncMap{
	"dur": func(d time.Duration) string {
		if d < time.Second {
			return d.Round(time.Microsecond).String()
		}
		return d.Round(time.Second).String()
	},
	"ts": func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
}

func (h *handler) parseTemplates() error {
	h.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("web: template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	return nil
}

func (h *handler) has(cmd string) bool { _, ok := h.cmds[cmd]; return ok }

// call runs a module command as `siplua ctl` would.
func (h *handler) call(name string, args ...string) (any, error) {
	c, ok := h.cmds[name]
	if !ok {
		return nil, fmt.Errorf("%s: no loaded module offers this command", name)
	}
	return c.Fn(args)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if h.loopback && !loopbackHost(r.Host) {
		// Without auth the page trusts the network position; a DNS-rebound name must not reach it.
		http.Error(w, "web: open this page by a loopback address (127.0.0.1, [::1], localhost)", http.StatusForbidden)
		return
	}
	if !h.authorized(r) {
		if h.o.Config.User != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="siplua", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="siplua"`)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/assets/"):
		h.serveAsset(w, r)
		return
	case p == "/favicon.ico":
		http.Redirect(w, r, "/assets/favicon.svg", http.StatusMovedPermanently)
		return
	case p == "/events":
		h.serveEvents(w, r)
		return
	case strings.HasPrefix(p, "/action/"):
		h.serveAction(w, r, strings.TrimPrefix(p, "/action/"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	page, ok := h.pageData(p, r.URL.Query())
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.render(w, page)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authorized checks basic auth or the bearer token in constant time; with neither configured everyone
// is (config validation allows that on loopback only).
func (h *handler) authorized(r *http.Request) bool {
	c := h.o.Config
	if !c.HasAuth() {
		return true
	}
	if c.User != "" {
		if u, p, ok := r.BasicAuth(); ok && eq(u, c.User) && eq(p, c.Password) {
			return true
		}
	}
	if c.Token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(strings.TrimSpace(tok), c.Token) {
			return true
		}
	}
	return false
}

func eq(a, b string) bool {
	x := sha256.Sum256([]byte(a))
	y := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	b, err := assetFS.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}

// navItem is one link of the menu; pages whose module is not loaded are left out.
type navItem struct {
	Path, Title string
	Active      bool
}

func (h *handler) nav(cur string) []navItem {
	items := []navItem{{Path: "/", Title: "Overview"}, {Path: "/script", Title: "Script"}}
	if h.has("ul.dump") {
		items = append(items, navItem{Path: "/registrations", Title: "Registrations"})
	}
	if h.has("dispatcher.list") {
		items = append(items, navItem{Path: "/dispatcher", Title: "Dispatcher"})
	}
	if h.has("htable.stats") {
		items = append(items, navItem{Path: "/htable", Title: "Hash tables"})
	}
	if h.has("dlg.list") {
		items = append(items, navItem{Path: "/dialogs", Title: "Dialogs"})
	}
	for i := range items {
		items[i].Active = items[i].Path == cur
	}
	return items
}

// page is what every template gets.
type page struct {
	Name, Title  string
	Path         string
	Nav          []navItem
	Version      string
	CSRF         string
	AllowActions bool
	Flash        string // the outcome of an action, from the redirect's query
	FlashErr     bool
	Data         any
}

func (h *handler) render(w http.ResponseWriter, p *page) {
	t := h.pages[p.Name]
	p.Nav = h.nav(p.Path)
	p.Version = h.o.Version
	p.CSRF = h.csrf
	p.AllowActions = h.o.Config.AllowActions
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := t.Execute(w, p); err != nil {
		h.log.Warn("render", "page", p.Name, "err", err)
	}
}

// serveAction runs one POST action: same origin, a valid CSRF token, and allow_actions.
func (h *handler) serveAction(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.o.Config.AllowActions {
		http.Error(w, "actions are off: set [web] allow_actions = true", http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(h.csrf)) != 1 {
		http.Error(w, "bad or missing CSRF token: reload the page and try again", http.StatusForbidden)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	back := "/"
	var msg string
	var err error
	f := r.PostForm.Get
	switch name {
	case "reload":
		back = "/script"
		var ws []string
		if ws, err = h.o.Reload(); err == nil {
			msg = fmt.Sprintf("reloaded: generation %d", h.e.Generation())
			if len(ws) > 0 {
				msg += "; " + strings.Join(ws, "; ")
			}
		} else {
			err = fmt.Errorf("reload failed, the running script keeps serving: %s", strings.Join(engine.ErrorLines(err), "; "))
		}
	case "unregister":
		back = "/registrations?aor=" + url.QueryEscape(f("aor"))
		table := f("table")
		if table == "" {
			table = "location"
		}
		if f("aor") == "" || f("contact") == "" {
			err = errors.New("unregister: aor and contact are required")
		} else if _, err = h.call("ul.rm", table, f("aor"), f("contact")); err == nil {
			msg = "removed " + f("contact") + " from " + f("aor")
		}
	case "ds-inactive", "ds-active":
		back = "/dispatcher"
		state, word := "i", "inactive"
		if name == "ds-active" {
			state, word = "a", "active"
		}
		if _, err = h.call("dispatcher.set_state", state, f("group"), f("uri")); err == nil {
			msg = fmt.Sprintf("set %s in set %s %s", f("uri"), f("group"), word)
		}
	default:
		http.NotFound(w, r)
		return
	}
	h.log.Info("web action", "action", name, "remote", r.RemoteAddr, "ok", err == nil, "err", err)
	q := url.Values{}
	if err != nil {
		q.Set("err", err.Error())
	} else {
		q.Set("ok", msg)
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+q.Encode(), http.StatusSeeOther)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
