// Package http_async_client asks HTTP services without holding a route worker (Kamailio's
// http_async_client): KSR.http_async_client.query(url, route) suspends the request's transaction (tm's
// t_suspend), the request goes out from a goroutine of its own (bounded by max_inflight, each with a strict
// timeout), and when the answer comes route runs on a worker with the request (tm's t_continue), where
// $http_ok, $http_rs, $http_rb ... give the result and t_relay / t_reply go on with the transaction.
package http_async_client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
)

const modName = "http_async_client"

func init() {
	engine.Register(engine.Module{Name: modName, After: []string{"tm"}, New: func() engine.Instance { return New() }})
}

// New returns the module with its defaults.
func New() *HTTPAsync {
	return &HTTPAsync{Timeout: 5000, MaxInflight: 1024, MaxBody: 1 << 20, FollowRedirect: false}
}

// HTTPAsync holds the parameters.
type HTTPAsync struct {
	// Timeout bounds a query, connection included (ms); a query that times out resumes with $http_ok 0.
	Timeout int `toml:"timeout"`
	// MaxInflight bounds the queries waiting for an answer; past it query returns -1 at once.
	MaxInflight int `toml:"max_inflight"`
	// MaxBody caps the body read into $http_rb (bytes); a longer one is an error.
	MaxBody int `toml:"max_body"`
	// FollowRedirect follows 3xx answers (Kamailio curl_follow_redirect).
	FollowRedirect bool `toml:"curl_follow_redirect"`

	e        *engine.Engine
	log      *slog.Logger
	client   *http.Client
	inflight chan struct{}
}

// suspender is what the module needs from tm: Kamailio's t_suspend and t_continue.
type suspender interface {
	Suspend(m *engine.Msg) (index, label uint32, err error)
	Continue(index, label uint32, route string) error
}

// Validate checks the parameters.
func (h *HTTPAsync) Validate() error {
	if h.Timeout < 1 || h.Timeout > 600000 {
		return fmt.Errorf("timeout: expected 1..600000 ms, got %d", h.Timeout)
	}
	if h.MaxInflight < 1 {
		return fmt.Errorf("max_inflight: expected >= 1, got %d", h.MaxInflight)
	}
	if h.MaxBody < 1 {
		return fmt.Errorf("max_body: expected >= 1 byte, got %d", h.MaxBody)
	}
	return nil
}

// Start makes the HTTP client.
func (h *HTTPAsync) Start(env *engine.Env) error {
	h.e, h.log = env.Engine, env.Log
	h.inflight = make(chan struct{}, h.MaxInflight)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	h.client = &http.Client{Transport: tr, Timeout: time.Duration(h.Timeout) * time.Millisecond}
	if !h.FollowRedirect {
		h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return nil
}

// Stop closes idle connections.
func (h *HTTPAsync) Stop() error {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	return nil
}

func (h *HTTPAsync) logger() *slog.Logger {
	if h.log == nil {
		return slog.Default()
	}
	return h.log
}

// Exports: KSR.http_async_client.*.
func (h *HTTPAsync) Exports() []engine.Export {
	return []engine.Export{
		{Name: "query", Fn: func(m *engine.Msg, url, route string) int { return h.query(m, http.MethodGet, url, "", route) }},
		{Name: "query_post", Fn: func(m *engine.Msg, url, body, route string) int {
			return h.query(m, http.MethodPost, url, body, route)
		}},
	}
}

// result is a query's answer, shared by the suspended request and the route that resumes it (the
// message's Mod map is copied with the request, the pointer with it).
type result struct {
	ok     bool
	err    string
	code   int
	reason string
	body   string
	hdr    http.Header
}

func resultOf(m *engine.Msg) *result {
	r, _ := m.ModState(modName).(*result)
	return r
}

// query is query(url, route) / query_post(url, body, route), Kamailio's return values: 0 the transaction
// is suspended (end the route: route runs with the answer), 1 no transaction could be suspended (the
// script goes on; route runs later with a copy of the message), -1 error (bad URL, too many queries).
func (h *HTTPAsync) query(m *engine.Msg, method, url, body, route string) int {
	if route == "" || !(strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://")) {
		return -1
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		h.logger().Info("http query not made", "url", url, "err", err)
		return -1
	}
	if method == http.MethodPost {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	select {
	case h.inflight <- struct{}{}:
	default:
		h.logger().Warn("http query not made: max_inflight reached", "url", url)
		return -1
	}
	res := &result{}
	m.SetModState(modName, res) // before Suspend: the parked request carries it
	var resume func()
	rc := 1
	if s, ok := h.tm(); ok && m.IsRequest() {
		if index, label, err := s.Suspend(m); err == nil {
			rc = 0
			resume = func() {
				if err := s.Continue(index, label, route); err != nil {
					h.logger().Info("http answer came for a transaction that ended", "url", url, "err", err)
				}
			}
		}
	}
	if resume == nil { // transactionless: route runs on a copy of the message
		cp := m.Detach()
		resume = func() {
			h.e.RunOnWorker(cp, func(cm *engine.Msg) {
				if err := cm.CallRoute(route); err != nil {
					h.logger().Error("http_async_client route failed", "route", route, "err", err)
				}
			})
		}
	}
	// the answer is written by the query's goroutine: only the copies the resume route gets may read it
	m.DelModState(modName)
	go h.do(req, res, resume) // bounded by max_inflight: one goroutine per query waiting on the network
	return rc
}

func (h *HTTPAsync) tm() (suspender, bool) {
	if h.e == nil {
		return nil, false
	}
	inst, ok := h.e.Module("tm")
	if !ok {
		return nil, false
	}
	s, ok := inst.(suspender)
	return s, ok
}

// do makes the request, fills res and resumes.
func (h *HTTPAsync) do(req *http.Request, res *result, resume func()) {
	defer func() { <-h.inflight }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.Timeout)*time.Millisecond)
	defer cancel()
	resp, err := h.client.Do(req.WithContext(ctx))
	if err == nil {
		var b bytes.Buffer
		_, err = io.Copy(&b, io.LimitReader(resp.Body, int64(h.MaxBody)+1))
		resp.Body.Close()
		if err == nil && b.Len() > h.MaxBody {
			err = errors.New("body longer than max_body")
		}
		res.code, res.hdr = resp.StatusCode, resp.Header
		res.reason = strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode)))
		res.body = b.String()
	}
	if err != nil {
		res.err = err.Error()
	} else {
		res.ok = true
	}
	resume()
}

// PVs: $http_ok, $http_err, $http_rs, $http_rr, $http_rb, $http_bs, $http_hdr(name) in the resume route.
func (h *HTTPAsync) PVs() []engine.PV {
	get := func(f func(r *result, arg string) engine.Value) func(*engine.Msg, string) engine.Value {
		return func(m *engine.Msg, arg string) engine.Value {
			r := resultOf(m)
			if r == nil {
				return engine.Value{}
			}
			return f(r, arg)
		}
	}
	return []engine.PV{
		{Name: "http_ok", Get: get(func(r *result, _ string) engine.Value {
			if r.ok {
				return engine.IntVal(1)
			}
			return engine.IntVal(0)
		})},
		{Name: "http_err", Get: get(func(r *result, _ string) engine.Value {
			if r.err == "" {
				return engine.Value{}
			}
			return engine.StrVal(r.err)
		})},
		{Name: "http_rs", Get: get(func(r *result, _ string) engine.Value {
			if !r.ok {
				return engine.Value{}
			}
			return engine.IntVal(int64(r.code))
		})},
		{Name: "http_rr", Get: get(func(r *result, _ string) engine.Value {
			if !r.ok {
				return engine.Value{}
			}
			return engine.StrVal(r.reason)
		})},
		{Name: "http_rb", Get: get(func(r *result, _ string) engine.Value {
			if !r.ok {
				return engine.Value{}
			}
			return engine.StrVal(r.body)
		})},
		{Name: "http_bs", Get: get(func(r *result, _ string) engine.Value { return engine.IntVal(int64(len(r.body))) })},
		{Name: "http_hdr", Get: get(func(r *result, name string) engine.Value {
			if v := r.hdr.Get(name); v != "" {
				return engine.StrVal(v)
			}
			return engine.Value{}
		})},
	}
}
