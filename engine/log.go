package engine

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ParseLogLevel accepts Kamailio-ish names: debug, info, notice, warn(ing), err(or), crit.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug", "dbg":
		return slog.LevelDebug, nil
	case "info", "notice":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error", "crit", "alert":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (expected debug, info, warn or error)", s)
}

// NewLogger makes the process logger from [core] log_level and log_format; level can be changed later
// through the returned LevelVar.
func NewLogger(w io.Writer, c CoreConfig) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	if l, err := ParseLogLevel(c.LogLevel); err == nil {
		lv.Set(l)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}
