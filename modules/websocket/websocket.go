// Package websocket is Kamailio's websocket module as far as a script sees it: the WebSocket transport
// itself (RFC 6455 upgrade, framing, pings, RFC 7118) lives in engine/transport and is configured by the
// [websocket] table; this module gives the script KSR.websocket.*.
package websocket

import "github.com/siplua/siplua/engine"

func init() {
	engine.Register(engine.Module{Name: "websocket", New: func() engine.Instance { return &WebSocket{} }})
}

// WebSocket has no parameters: the transport's settings are the [websocket] table.
type WebSocket struct{}

// Exports: KSR.websocket.*.
func (*WebSocket) Exports() []engine.Export {
	return []engine.Export{
		{Name: "handle_handshake", Fn: handleHandshake},
		{Name: "close", Fn: func(m *engine.Msg) int { return closeConn(m, 1000, "Normal closure", m.ConnID()) }},
		{Name: "close_reason", Fn: func(m *engine.Msg, code int, reason string) int { return closeConn(m, code, reason, m.ConnID()) }},
		{Name: "close_conid", Fn: closeConn},
	}
}

// handleHandshake is ws_handle_handshake. In Kamailio it answers the HTTP upgrade from
// event_route[xhttp:request]; here the transport has done the upgrade (path, Origin, "sip" subprotocol)
// before any SIP message arrives, so it returns 1 for a message on a WebSocket connection (the handshake
// succeeded) and -1 otherwise.
func handleHandshake(m *engine.Msg) int {
	if m.Proto.WebSocket() {
		return 1
	}
	return -1
}

// closeConn is ws_close(status, reason, conid): 1 when the connection was found and a close frame queued,
// -1 otherwise (Kamailio's codes).
func closeConn(m *engine.Msg, code int, reason string, id int) int {
	if code < 1000 || code > 4999 || id < 0 || !m.E.CloseConn(id, code, reason) {
		return -1
	}
	return 1
}
