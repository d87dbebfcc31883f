package engine_test

import (
	"testing"

	"github.com/siplua/siplua/engine"
)

// TestParseDestSecure: sips: URIs and transport=tls|ws|wss name their transport; a secure one without a
// port goes to 5061 (RFC 3261 §19.1.2).
func TestParseDestSecure(t *testing.T) {
	for _, tt := range []struct {
		uri, want string
	}{
		{"sips:bob@127.0.0.1", "tls 127.0.0.1:5061"},
		{"sip:bob@127.0.0.1;transport=tls", "tls 127.0.0.1:5061"},
		{"sip:bob@127.0.0.1:5071;transport=TLS", "tls 127.0.0.1:5071"},
		{"sip:bob@127.0.0.1:8080;transport=ws", "ws 127.0.0.1:8080"},
		{"sip:bob@127.0.0.1;transport=wss", "wss 127.0.0.1:5061"},
		{"sip:bob@127.0.0.1", "udp 127.0.0.1:5060"},
	} {
		d, err := engine.ParseDest(tt.uri)
		if err != nil {
			t.Fatalf("%s: %v", tt.uri, err)
		}
		tg, ok := d.Literal()
		if got := tg.Proto.String() + " " + tg.Addr.String(); !ok || got != tt.want {
			t.Errorf("%s: %s, want %s", tt.uri, got, tt.want)
		}
	}
}
