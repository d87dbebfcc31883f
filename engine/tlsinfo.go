package engine

import "github.com/siplua/siplua/engine/transport"

// TLSInfo is the TLS state of the connection m came on (modules/tls: KSR.tls.cget, is_peer_verified);
// ok is false for a message that did not come over TLS or WSS.
func (m *Msg) TLSInfo() (transport.TLSInfo, bool) {
	if m.conn == nil {
		return transport.TLSInfo{}, false
	}
	return m.conn.TLSInfo()
}
