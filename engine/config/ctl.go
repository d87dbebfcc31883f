package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/BurntSushi/toml"
)

// CtlConfig is the [ctl] table: the control socket `siplua ctl` talks to.
type CtlConfig struct {
	Enabled bool `toml:"enabled"`
	// Socket is the unix socket path; "" = DefaultCtlSocket(). Relative paths are relative to the config.
	Socket string `toml:"socket"`
}

// MetricsConfig is the [metrics] table: the Prometheus endpoint.
type MetricsConfig struct {
	Listen string `toml:"listen"` // host:port of the HTTP endpoint serving /metrics; "" = off
	Pprof  bool   `toml:"pprof"`  // also serve /debug/pprof/ there
}

// DefaultCtl returns the [ctl] defaults.
func DefaultCtl() CtlConfig { return CtlConfig{Enabled: true} }

// DefaultCtlSocket is where the control socket goes unless [ctl] socket says otherwise: in
// $XDG_RUNTIME_DIR (private to the user) when set, else /tmp/siplua-UID.ctl so users do not collide.
func DefaultCtlSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "siplua.ctl")
	}
	return filepath.Join(os.TempDir(), "siplua-"+strconv.Itoa(os.Getuid())+".ctl")
}

// CtlSocket is the control socket's path for this configuration.
func (c *Config) CtlSocket() string {
	if c.Ctl.Socket == "" {
		return DefaultCtlSocket()
	}
	if c.FS != nil { // the embedded configuration has no directory of its own
		return c.Ctl.Socket
	}
	return c.Resolve(c.Ctl.Socket)
}

// maxSocketPath is the longest unix socket path Linux and the BSDs accept (sun_path less the NUL).
const maxSocketPath = 103

func (c *Config) validateCtlMetrics() Errors {
	var errs Errors
	bad := func(k toml.Key, format string, a ...any) {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, k), Msg: k.String() + ": " + fmt.Sprintf(format, a...)})
	}
	if p := c.CtlSocket(); c.Ctl.Enabled && len(p) > maxSocketPath {
		bad(toml.Key{"ctl", "socket"}, "path %q is longer than %d bytes, too long for a unix socket", p, maxSocketPath)
	}
	if l := c.Metrics.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil {
			bad(toml.Key{"metrics", "listen"}, "expected host:port such as \"127.0.0.1:9090\", got %q", l)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(toml.Key{"metrics", "listen"}, "bad port in %q", l)
		}
	}
	if c.Metrics.Pprof && c.Metrics.Listen == "" {
		bad(toml.Key{"metrics", "pprof"}, "needs [metrics] listen: pprof is served on the metrics endpoint")
	}
	return errs
}
