package transport

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
)

// TLSInfo is what a script may ask about a TLS (or WSS) connection (KSR.tls.*): the handshake's state and
// the certificate this side presented.
type TLSInfo struct {
	State tls.ConnectionState
	Local *x509.Certificate // nil when none was presented (an outgoing connection without a client certificate)
}

// TLSInfo returns the TLS state of c; ok is false for a connection without TLS or before its handshake.
// rw is set before the connection's first message is read, so a message's route sees it complete.
func (c *Conn) TLSInfo() (TLSInfo, bool) {
	tlc, ok := c.rw.(*tls.Conn)
	if !ok || tlc == nil {
		return TLSInfo{}, false
	}
	info := TLSInfo{State: tlc.ConnectionState()}
	if !info.State.HandshakeComplete {
		return TLSInfo{}, false
	}
	if st := c.tr.tls.Load(); st != nil {
		cert := st.def // a client presents the default certificate; a server the one for the SNI name
		if c.accepted {
			if sc := st.sni[strings.ToLower(info.State.ServerName)]; sc != nil {
				cert = sc
			}
		}
		if cert != nil {
			info.Local = cert.Leaf
		}
	}
	return info, true
}
