package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// WebConfig is the [web] table: the built-in status page (engine/web).
type WebConfig struct {
	// Listen is host:port of the status page; "" = off.
	Listen string `toml:"listen"`
	// User and Password turn on HTTP basic auth; Token turns on "Authorization: Bearer TOKEN". Either one is
	// required when Listen is not a loopback address.
	User     string `toml:"user"`
	Password string `toml:"password"`
	Token    string `toml:"token"`
	// AllowActions shows buttons that change state (reload, unregister a contact, set a dispatcher
	// destination inactive); off, the page is read-only.
	AllowActions bool `toml:"allow_actions"`
}

// HasAuth reports whether the page asks for credentials.
func (w WebConfig) HasAuth() bool { return w.User != "" || w.Token != "" }

// IsLoopbackListen reports whether a host:port binds only loopback addresses ("127.0.0.1:8080",
// "[::1]:8080", "localhost:8080"); an empty host (every interface) is not loopback.
func IsLoopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (c *Config) validateWeb() Errors {
	var errs Errors
	bad := func(k toml.Key, format string, a ...any) {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, k), Msg: k.String() + ": " + fmt.Sprintf(format, a...)})
	}
	w := c.Web
	if w.Listen == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(w.Listen); err != nil {
		bad(toml.Key{"web", "listen"}, "expected host:port such as \"127.0.0.1:8080\", got %q", w.Listen)
		return errs
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad(toml.Key{"web", "listen"}, "bad port in %q", w.Listen)
	}
	if w.User != "" && w.Password == "" {
		bad(toml.Key{"web", "user"}, "basic auth needs a password too: set [web] password")
	}
	if w.User == "" && w.Password != "" {
		bad(toml.Key{"web", "password"}, "basic auth needs a user too: set [web] user")
	}
	if !w.HasAuth() && !IsLoopbackListen(w.Listen) {
		bad(toml.Key{"web", "listen"}, "%q is not a loopback address: set user and password, or token, so that the page is not open to the network", w.Listen)
	}
	return errs
}
