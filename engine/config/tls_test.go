package config

import (
	"strings"
	"testing"
)

// TestTLSAndWebSocketTables: the [tls] and [websocket] tables, their defaults and their errors.
func TestTLSAndWebSocketTables(t *testing.T) {
	c, err := ParseConfig(nil, "empty.toml", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.MinVersion != "TLS1.2" || !c.TLS.VerifyServer || c.TLS.HandshakeTimeout != 10000 || c.WebSocket.Path != "/" ||
		c.WebSocket.MaxMessageSize != 65535 || c.WebSocket.PingInterval != 30 {
		t.Errorf("defaults: %+v %+v", c.TLS, c.WebSocket)
	}
	for _, tt := range []struct{ name, src, err string }{
		{"all set", "[core]\nlisten = [\"tls:127.0.0.1:5061\", \"wss:127.0.0.1:8443\", \"ws:127.0.0.1:8080\"]\n" +
			"[tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nca_list = \"ca.pem\"\nverify_client = true\nmin_version = \"TLS1.3\"\n" +
			"[[tls.server]]\nserver_name = \"a.example\"\ncertificate = \"a.pem\"\nprivate_key = \"a.key\"\n" +
			"[websocket]\npath = \"/ws\"\nallowed_origins = [\"https://a.example\"]\n", ""},
		{"wss without a certificate", "[core]\nlisten = [\"wss:127.0.0.1:8443\"]\n", "a tls: or wss: listener needs [tls] certificate and private_key"},
		{"ws needs none", "[core]\nlisten = [\"ws:127.0.0.1:8080\"]\n", ""},
		{"bad min_version", "[tls]\nmin_version = \"TLS1.0\"\n", `tls.min_version: expected "TLS1.2" or "TLS1.3", got "TLS1.0"`},
		{"verify_client without ca_list", "[tls]\nverify_client = true\n", "tls.verify_client: needs ca_list"},
		{"server without a name", "[[tls.server]]\ncertificate = \"a.pem\"\nprivate_key = \"a.key\"\n", "entry 1: server_name is required"},
		{"server twice", "[[tls.server]]\nserver_name = \"a\"\ncertificate = \"a\"\nprivate_key = \"a\"\n[[tls.server]]\nserver_name = \"A\"\ncertificate = \"a\"\nprivate_key = \"a\"\n", `server_name "A" appears twice`},
		{"bad path", "[websocket]\npath = \"sip\"\n", "websocket.path: expected a path starting with /"},
		{"message smaller than a frame", "[websocket]\nmax_frame_size = 4096\nmax_message_size = 1024\n", "websocket.max_message_size: expected at least max_frame_size"},
		{"unknown key", "[tls]\ncertificat = \"c.pem\"\n", `unknown key "tls.certificat"`},
		{"bad listen proto", "[core]\nlisten = [\"sctp:127.0.0.1:5060\"]\n", "expected udp, tcp, tls, ws or wss"},
	} {
		_, err := ParseConfig([]byte(tt.src), "c.toml", "/d")
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
		}
	}
}
