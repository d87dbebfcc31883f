// Package metrics serves the engine's counters to Prometheus. The message path only bumps atomics in
// engine.Stats; this package turns them into metrics when scraped, so metrics cost nothing per message
// beyond those adds.
package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/siplua/siplua/engine"
)

// Server is the HTTP endpoint of /metrics (and /debug/pprof/ when enabled).
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr ("127.0.0.1:9090").
func Listen(addr string, e *engine.Engine, version string, withPprof bool, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	return &Server{ln: ln, log: log.With("module", "metrics"),
		srv: &http.Server{Handler: Handler(e, version, withPprof), ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers until Close.
func (s *Server) Serve() {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("metrics server", "err", err)
	}
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Handler serves /metrics from a registry of its own (no global registry), and pprof when asked.
func Handler(e *engine.Engine, version string, withPprof bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(e, version), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

type collector struct {
	e       *engine.Engine
	version string

	requests, replies, repliesSent, forwarded, routeDur, luaErrors, dropped *prometheus.Desc
	queue, queueCap, busy, workers, reloads, generation, info, uptime       *prometheus.Desc
	routeTimeouts, gensLive, rejected                                       *prometheus.Desc

	// modGauges are the loaded modules' gauges (engine.GaugeProvider), described once: modules are loaded
	// only at start.
	modGauges []engine.Gauge
	modDescs  []*prometheus.Desc
}

func newCollector(e *engine.Engine, version string) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("siplua_"+name, help, labels, nil)
	}
	c := &collector{e: e, version: version,
		requests:    d("requests_received_total", "SIP requests received, by method.", "method"),
		replies:     d("replies_received_total", "SIP replies received."),
		repliesSent: d("replies_sent_total", "SIP replies sent, by code class and origin (local: generated here; relayed).", "class", "origin"),
		forwarded:   d("requests_forwarded_total", "Requests relayed statelessly."),
		routeDur:    d("route_duration_seconds", "Time spent routing a message (request: ksr_request_route; reply: reply handling).", "route"),
		luaErrors:   d("lua_errors_total", "Script errors while routing."),
		dropped:     d("messages_dropped_total", "Messages dropped, by reason (queue_full, parse_error, bad_via, script).", "reason"),
		rejected: d("messages_rejected_total",
			"Requests answered with an error by the strict checks before any script, by reason (duplicate_header, content_length_mismatch, version, framing).", "reason"),
		queue:         d("queue_depth", "Messages waiting for a worker."),
		queueCap:      d("queue_capacity", "Size of the worker queue ([core] queue)."),
		busy:          d("workers_busy", "Workers routing a message now."),
		workers:       d("workers", "Route workers."),
		reloads:       d("reloads_total", "Reloads, by result (ok, failed).", "result"),
		generation:    d("script_generation", "Generation of the script serving new messages (1 at start, +1 per reload)."),
		info:          d("build_info", "Always 1; the version label says which siplua runs.", "version"),
		uptime:        d("uptime_seconds", "Seconds since the engine started."),
		routeTimeouts: d("route_timeouts_total", "Lua calls cancelled because they ran over [lua] route_timeout."),
		gensLive: d("script_generations_live",
			"Script generations still open: the current one and older ones that a worker or a transaction still uses."),
	}
	for _, g := range e.ModuleGauges() {
		c.modGauges = append(c.modGauges, g)
		c.modDescs = append(c.modDescs, d(g.Name, g.Help))
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.replies, c.repliesSent, c.forwarded, c.routeDur, c.luaErrors,
		c.dropped, c.queue, c.queueCap, c.busy, c.workers, c.reloads, c.generation, c.info, c.uptime,
		c.routeTimeouts, c.gensLive, c.rejected} {
		ch <- d
	}
	for _, d := range c.modDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s.RequestsByMethod(func(method string, n uint64) { counter(c.requests, n, method) })
	_, replies := s.Received()
	counter(c.replies, replies)
	s.RepliesSent(func(origin int, class string, n uint64) {
		o := "local"
		if origin == engine.OriginRelayed {
			o = "relayed"
		}
		counter(c.repliesSent, n, class, o)
	})
	counter(c.forwarded, s.Forwarded())
	histogram(ch, c.routeDur, s.RequestRouteDuration(), "request")
	histogram(ch, c.routeDur, s.ReplyRouteDuration(), "reply")
	counter(c.luaErrors, s.LuaErrors())
	qf, pe, sc := s.Drops()
	counter(c.dropped, qf, "queue_full")
	counter(c.dropped, pe, "parse_error")
	counter(c.dropped, sc, "script")
	counter(c.dropped, s.DroppedBadVia(), "bad_via")
	s.Rejected(func(reason string, n uint64) { counter(c.rejected, n, reason) })
	n, capacity := c.e.QueueLen()
	gauge(c.queue, float64(n))
	gauge(c.queueCap, float64(capacity))
	gauge(c.busy, float64(s.Busy()))
	gauge(c.workers, float64(len(c.e.Workers())))
	ok, failed := s.Reloads()
	counter(c.reloads, ok, "ok")
	counter(c.reloads, failed, "failed")
	gauge(c.generation, float64(c.e.Generation()))
	counter(c.routeTimeouts, s.RouteTimeouts())
	gauge(c.gensLive, float64(c.e.LiveGenerations()))
	gauge(c.info, 1, c.version)
	gauge(c.uptime, c.e.Uptime().Seconds())
	for i, g := range c.modGauges {
		gauge(c.modDescs[i], g.Value())
	}
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h engine.HistogramSnapshot, label string) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, label)
}
