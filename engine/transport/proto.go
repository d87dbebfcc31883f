// Package transport holds siplua's sockets: the UDP and TCP listeners, their read loops, the table of TCP
// connections and the per-connection writers. It knows frames and addresses, not SIP routing: what a
// listener reads goes to the Handler the engine gives it.
package transport

import "strings"

// Proto is a transport protocol.
type Proto uint8

const (
	ProtoNone Proto = iota
	UDP
	TCP
)

func (p Proto) String() string {
	switch p {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
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
	}
	return "UDP"
}

// ParseProto accepts udp/tcp in any case.
func ParseProto(s string) (Proto, bool) {
	switch strings.ToLower(s) {
	case "udp":
		return UDP, true
	case "tcp":
		return TCP, true
	}
	return ProtoNone, false
}
