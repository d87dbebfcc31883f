package routetest

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
)

// logRec is one log line of a route: level, message and the attributes that say where.
type logRec struct {
	Level  slog.Level
	Msg    string
	Module string
	Attrs  map[string]string
}

func (r logRec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Msg)
	for _, k := range []string{"where", "err"} {
		if v, ok := r.Attrs[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return b.String()
}

// logSink keeps the log lines written while a route runs (active), at every level: a test asserts on the
// debug lines too.
type logSink struct {
	mu     sync.Mutex
	active bool
	recs   []logRec
}

func (s *logSink) start() {
	s.mu.Lock()
	s.active, s.recs = true, nil
	s.mu.Unlock()
}

func (s *logSink) stop() []logRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = false
	r := s.recs
	s.recs = nil
	return r
}

// captureHandler is the slog.Handler of a test's engine, modules and script.
type captureHandler struct {
	sink  *logSink
	attrs []slog.Attr
	group string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	if !h.sink.active {
		return nil
	}
	rec := logRec{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		if a.Key == "module" {
			rec.Module = a.Value.String()
		} else {
			rec.Attrs[a.Key] = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.sink.recs = append(h.sink.recs, rec)
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), group: h.group}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{sink: h.sink, attrs: h.attrs, group: name}
}

// neutralize switches off a module's persistence and network backends in its parameter struct, by their
// TOML keys (the same in every module that has them): snapshot_file = "" (no snapshot), backend "redis" →
// "memory". It returns what it changed, as "key: old → new".
func neutralize(inst any) []string {
	v := reflect.ValueOf(inst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	v = v.Elem()
	var changes []string
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() || f.Kind() != reflect.String {
			continue
		}
		tag, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		switch {
		case tag == "snapshot_file" && f.String() != "":
			changes = append(changes, fmt.Sprintf("%s: %q → \"\" (no snapshot)", tag, f.String()))
			f.SetString("")
		case tag == "backend" && f.String() == "redis":
			changes = append(changes, fmt.Sprintf("%s: \"redis\" → \"memory\"", tag))
			f.SetString("memory")
		}
	}
	return changes
}
