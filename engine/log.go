package engine

import (
	"io"
	"log/slog"

	"github.com/siplua/siplua/engine/config"
)

// ParseLogLevel accepts Kamailio-ish names: debug, info, notice, warn(ing), err(or), crit.
func ParseLogLevel(s string) (slog.Level, error) { return config.ParseLogLevel(s) }

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
