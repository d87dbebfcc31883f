// Package transport holds siplua's sockets: the UDP, TCP, TLS and WebSocket listeners, their read loops,
// the table of stream connections and the per-connection writers. It knows frames and addresses, not SIP
// routing: what a listener reads goes to the Handler the engine gives it.
package transport

import "strings"

// Proto is a transport protocol. The values are Kamailio's protocol ids ($proto as a number,
// KSR.kx.get_protoid): udp 1, tcp 2, tls 3, sctp 4 (not served), ws 5, wss 6.
type Proto uint8

const (
	ProtoNone Proto = 0
	UDP       Proto = 1
	TCP       Proto = 2
	TLS       Proto = 3
	WS        Proto = 5
	WSS       Proto = 6
)

func (p Proto) String() string {
	switch p {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	case TLS:
		return "tls"
	case WS:
		return "ws"
	case WSS:
		return "wss"
	}
	return "none"
}

// Upper is the form used in Via headers.
func (p Proto) Upper() string {
	switch p {
	case UDP:
		return "UDP"
	case TCP:
		return "TCP"
	case TLS:
		return "TLS"
	case WS:
		return "WS"
	case WSS:
		return "WSS"
	}
	return "UDP"
}

// Stream reports whether p runs over a connection (everything but UDP): replies and in-dialog requests go
// back over the connection, messages carry Content-Length, nothing is retransmitted.
func (p Proto) Stream() bool { return p == TCP || p == TLS || p == WS || p == WSS }

// Secure reports whether p is encrypted (TLS, WSS): a sips: URI needs it.
func (p Proto) Secure() bool { return p == TLS || p == WSS }

// WebSocket reports whether p is WS or WSS.
func (p Proto) WebSocket() bool { return p == WS || p == WSS }

// ParseProto accepts udp, tcp, tls, ws and wss in any case.
func ParseProto(s string) (Proto, bool) {
	// EqualFold, not ToLower: every relayed reply parses its Via's "UDP", and lowering it allocated
	for _, c := range [...]struct {
		name  string
		proto Proto
	}{{"udp", UDP}, {"tcp", TCP}, {"tls", TLS}, {"ws", WS}, {"wss", WSS}} {
		if strings.EqualFold(s, c.name) {
			return c.proto, true
		}
	}
	return ProtoNone, false
}
