package core

import "github.com/siplua/siplua/engine"

// transportExports are KSR.is_UDP() ... KSR.is_proto(): the transport a message came over, as Kamailio's
// core KEMI (true/false).
func transportExports() []engine.Export {
	is := func(p engine.Proto) func(m *engine.Msg) bool { return func(m *engine.Msg) bool { return m.Proto == p } }
	return []engine.Export{
		{Name: "is_UDP", Fn: is(engine.UDP)},
		{Name: "is_TCP", Fn: is(engine.TCP)},
		{Name: "is_TLS", Fn: is(engine.TLS)},
		{Name: "is_SCTP", Fn: func(*engine.Msg) bool { return false }}, // no SCTP transport
		{Name: "is_WS", Fn: is(engine.WS)},
		{Name: "is_WSS", Fn: is(engine.WSS)},
		{Name: "is_WSX", Fn: func(m *engine.Msg) bool { return m.Proto.WebSocket() }},
		{Name: "is_proto", Fn: isProto},
	}
}

// isProto is KSR.is_proto(list): true when the message came over one of the transports the letters name,
// Kamailio's letters: u udp, t tcp, e tls, s sctp, v ws, w wss (any case).
func isProto(m *engine.Msg, list string) bool {
	for i := 0; i < len(list); i++ {
		var p engine.Proto
		switch list[i] | 0x20 {
		case 'u':
			p = engine.UDP
		case 't':
			p = engine.TCP
		case 'e':
			p = engine.TLS
		case 'v':
			p = engine.WS
		case 'w':
			p = engine.WSS
		default:
			continue
		}
		if m.Proto == p {
			return true
		}
	}
	return false
}
