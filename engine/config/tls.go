package config

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// TLSConfig is the [tls] table: certificates of tls: and wss: listeners and of outgoing TLS connections.
type TLSConfig struct {
	Certificate  string `toml:"certificate"`   // PEM certificate chain (relative to the config file)
	PrivateKey   string `toml:"private_key"`   // PEM private key
	CAList       string `toml:"ca_list"`       // PEM CAs verifying clients and servers ("" = system roots for servers)
	VerifyClient bool   `toml:"verify_client"` // require and verify a client certificate (needs ca_list)
	MinVersion   string `toml:"min_version"`   // "TLS1.2" or "TLS1.3"
	// HandshakeTimeout (milliseconds) bounds a TLS handshake plus WebSocket upgrade: a peer that stalls or
	// sends nothing after connecting is closed after it.
	HandshakeTimeout int `toml:"handshake_timeout"`
	// Outgoing connections (sips: and transport=tls destinations).
	VerifyServer bool   `toml:"verify_server"`
	ServerName   string `toml:"server_name"` // SNI and the name checked ("" = the destination address)
	// Servers select a certificate by the client's SNI.
	Servers []TLSServerConfig `toml:"server"`
}

// TLSServerConfig is one [[tls.server]] entry.
type TLSServerConfig struct {
	ServerName  string `toml:"server_name"`
	Certificate string `toml:"certificate"`
	PrivateKey  string `toml:"private_key"`
}

// WebSocketConfig is the [websocket] table (ws: and wss: listeners, RFC 7118).
type WebSocketConfig struct {
	Path           string   `toml:"path"`            // HTTP path of the upgrade
	AllowedOrigins []string `toml:"allowed_origins"` // Origin values accepted; empty = any
	PingInterval   int      `toml:"ping_interval"`   // seconds of silence before a ping (0 = none before the lifetime)
	MaxFrameSize   int      `toml:"max_frame_size"`  // bytes of one frame's payload
	MaxMessageSize int      `toml:"max_message_size"`
}

// DefaultTLS returns the [tls] defaults.
func DefaultTLS() TLSConfig {
	return TLSConfig{MinVersion: "TLS1.2", HandshakeTimeout: 10000, VerifyServer: true}
}

// DefaultWebSocket returns the [websocket] defaults.
func DefaultWebSocket() WebSocketConfig {
	return WebSocketConfig{Path: "/", PingInterval: 30, MaxFrameSize: 65535, MaxMessageSize: 65535}
}

// TLSVersion is min_version as a crypto/tls constant.
func (t TLSConfig) TLSVersion() uint16 {
	switch strings.ToUpper(strings.ReplaceAll(t.MinVersion, "v", "")) {
	case "TLS1.3":
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// NeedsTLS reports whether a listener needs the [tls] certificate.
func (c *Config) NeedsTLS() bool {
	for _, l := range c.Listen {
		if l.Proto.Secure() {
			return true
		}
	}
	return false
}

func (c *Config) validateTLS() Errors {
	var errs Errors
	bad := func(k toml.Key, format string, a ...any) {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, k), Msg: k.String() + ": " + fmt.Sprintf(format, a...)})
	}
	t := &c.TLS
	switch strings.ToUpper(t.MinVersion) {
	case "TLS1.2", "TLS1.3", "TLSV1.2", "TLSV1.3":
	default:
		bad(toml.Key{"tls", "min_version"}, "expected \"TLS1.2\" or \"TLS1.3\", got %q", t.MinVersion)
	}
	if t.HandshakeTimeout < 1 {
		bad(toml.Key{"tls", "handshake_timeout"}, "expected 1 or more milliseconds, got %d", t.HandshakeTimeout)
	}
	if c.NeedsTLS() && (t.Certificate == "" || t.PrivateKey == "") {
		bad(toml.Key{"tls", "certificate"}, "a tls: or wss: listener needs [tls] certificate and private_key")
	}
	if t.VerifyClient && t.CAList == "" {
		bad(toml.Key{"tls", "verify_client"}, "needs ca_list (the CAs that sign the client certificates)")
	}
	seen := map[string]bool{}
	for i, s := range t.Servers {
		k := toml.Key{"tls", "server"}
		switch {
		case s.ServerName == "":
			bad(k, "entry %d: server_name is required", i+1)
		case seen[strings.ToLower(s.ServerName)]:
			bad(k, "entry %d: server_name %q appears twice", i+1, s.ServerName)
		case s.Certificate == "" || s.PrivateKey == "":
			bad(k, "entry %d (%s): certificate and private_key are required", i+1, s.ServerName)
		}
		seen[strings.ToLower(s.ServerName)] = true
	}
	w := &c.WebSocket
	if !strings.HasPrefix(w.Path, "/") {
		bad(toml.Key{"websocket", "path"}, "expected a path starting with /, got %q", w.Path)
	}
	if w.PingInterval < 0 {
		bad(toml.Key{"websocket", "ping_interval"}, "expected 0 or more seconds, got %d", w.PingInterval)
	}
	if w.MaxFrameSize < 256 {
		bad(toml.Key{"websocket", "max_frame_size"}, "expected 256 or more bytes, got %d", w.MaxFrameSize)
	}
	if w.MaxMessageSize < w.MaxFrameSize {
		bad(toml.Key{"websocket", "max_message_size"}, "expected at least max_frame_size (%d), got %d", w.MaxFrameSize, w.MaxMessageSize)
	}
	return errs
}
