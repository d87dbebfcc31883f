package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// sample is one server-sent event: rates over the last interval and the gauges now. Each stream keeps its
// previous counters, so an open page costs a few atomic loads per interval and nothing per message.
type sample struct {
	T          int64   `json:"t"`   // unix milliseconds
	In         float64 `json:"in"`  // requests received per second
	Replies    float64 `json:"rep"` // replies sent (local and relayed) per second
	Forwarded  float64 `json:"fwd"` // requests relayed statelessly per second
	Errors     float64 `json:"err"` // script errors per second
	Busy       int64   `json:"busy"`
	Queue      int     `json:"queue"`
	Uptime     int64   `json:"uptime"`
	Generation uint64  `json:"gen"`
}

// maxStreams bounds the open event streams (one per open overview).
const maxStreams = 64

type counters struct {
	at                      time.Time
	req, rep, fwd, luaError uint64
}

func (h *handler) read() counters {
	s := h.e.Stats()
	c := counters{at: time.Now(), fwd: s.Forwarded(), luaError: s.LuaErrors()}
	c.req, _ = s.Received()
	s.RepliesSent(func(_ int, _ string, n uint64) { c.rep += n })
	return c
}

func (h *handler) sample(prev, cur counters) sample {
	s := sample{T: cur.at.UnixMilli(), Busy: h.e.Stats().Busy(), Uptime: int64(h.e.Uptime().Seconds()),
		Generation: h.e.Generation()}
	s.Queue, _ = h.e.QueueLen()
	if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 && !prev.at.IsZero() {
		rate := func(a, b uint64) float64 { return float64(b-a) / dt }
		s.In, s.Replies, s.Forwarded, s.Errors = rate(prev.req, cur.req), rate(prev.rep, cur.rep),
			rate(prev.fwd, cur.fwd), rate(prev.luaError, cur.luaError)
	}
	return s
}

// serveEvents streams a sample per interval as text/event-stream until the client goes away or the
// server closes.
func (h *handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// bounded: a script that opens streams in a loop gets 503, not a goroutine each
	if h.streams.Add(1) > maxStreams {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many open event streams", http.StatusServiceUnavailable)
		return
	}
	defer h.streams.Add(-1)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // a reverse proxy must not buffer the stream
	// retry: the browser reconnects after 2 s when the stream breaks (a restart of siplua).
	fmt.Fprintf(w, "retry: 2000\n\n")
	var prev counters
	send := func() bool {
		cur := h.read()
		b, _ := json.Marshal(h.sample(prev, cur))
		prev = cur
		if _, err := fmt.Fprintf(w, "event: sample\ndata: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	t := time.NewTicker(h.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if !send() {
				return
			}
		}
	}
}
