package engine

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine/transport"
)

// Listener is one listening socket (engine/transport).
type Listener = transport.Listener

// newTransport makes the engine's sockets: what they read is queued for the workers.
func (e *Engine) newTransport() *transport.Transport {
	return transport.New(transport.Options{
		ReadSize:    e.cfg.Core.UDPReadSize,
		MaxConns:    e.cfg.Core.TCPMaxConnections,
		Lifetime:    secs(e.cfg.Core.TCPLifetime),
		SentBy:      e.sentBy,
		Handle:      e.receive,
		StreamError: func() { e.stats.dropParse.Add(1) },
		FrameError:  e.frameError,
		Log:         e.log,
		// [tls] handshake_timeout also bounds the WebSocket upgrade.
		HandshakeTimeout: time.Duration(e.cfg.TLS.HandshakeTimeout) * time.Millisecond,
		WS: transport.WSOptions{
			Path:           e.cfg.WebSocket.Path,
			AllowedOrigins: e.cfg.WebSocket.AllowedOrigins,
			PingInterval:   secs(e.cfg.WebSocket.PingInterval),
			MaxFrame:       e.cfg.WebSocket.MaxFrameSize,
			MaxMessage:     e.cfg.WebSocket.MaxMessageSize,
		},
	})
}

// loadTLS reads the [tls] certificates of cfg into the transport: at start, and on every reload (a
// renewed certificate applies to the next handshake, without a restart). Without a certificate nothing is
// loaded (tls: and wss: listeners need one; the configuration says so).
func (e *Engine) loadTLS(cfg *Config) error {
	st, err := prepareTLS(cfg)
	if err == nil && st != nil {
		e.tr.SetTLS(st)
	}
	return err
}

// prepareTLS reads cfg's certificates (nil when it names none).
func prepareTLS(cfg *Config) (*transport.TLSState, error) {
	c := cfg.TLS
	if c.Certificate == "" {
		return nil, nil
	}
	s := transport.TLSSettings{
		Certificate: cfg.Resolve(c.Certificate), PrivateKey: cfg.Resolve(c.PrivateKey),
		VerifyClient: c.VerifyClient, MinVersion: c.TLSVersion(),
		VerifyServer: c.VerifyServer, ServerName: c.ServerName,
	}
	if c.CAList != "" {
		s.CAList = cfg.Resolve(c.CAList)
	}
	for _, sv := range c.Servers {
		s.Servers = append(s.Servers, transport.TLSServer{ServerName: sv.ServerName,
			Certificate: cfg.Resolve(sv.Certificate), PrivateKey: cfg.Resolve(sv.PrivateKey)})
	}
	return transport.LoadTLS(s)
}

// receive queues what a listener read; parsing happens in the workers so it spreads over them. A TCP
// reader waits for room in the queue (pushing back on its sender), a UDP reader does not.
func (e *Engine) receive(b []byte, src netip.AddrPort, proto Proto, local *Listener, conn *transport.Conn) {
	if len(e.taps) > 0 {
		var la netip.AddrPort
		if local != nil {
			la = local.Addr
		}
		for _, t := range e.taps {
			t.Tap(false, proto, la, src, b)
		}
	}
	m := newMsg()
	m.Buf = append(m.Buf[:0], b...)
	m.Src, m.Proto, m.Local, m.conn = src, proto, local, conn
	e.enqueue(m, conn != nil)
}

// WireTap is implemented by a module that mirrors the SIP traffic (siptrace's HEP capture): it sees every
// message the proxy reads (before parsing) and every message it sends, with the local and remote
// addresses (local is zero when the transport picks the socket). It runs on the reading or sending
// goroutine: it must copy what it keeps and never block.
type WireTap interface {
	Tap(sent bool, proto Proto, local, remote netip.AddrPort, b []byte)
}

func (e *Engine) tapSent(proto Proto, local *Listener, dst netip.AddrPort, b []byte) {
	if local == nil || local.Proto != proto {
		local = e.tr.Pick(proto, dst.Addr()) // the socket the transport will send from
	}
	var la netip.AddrPort
	if local != nil {
		la = local.Addr
	}
	for _, t := range e.taps {
		t.Tap(true, proto, la, dst, b)
	}
}

// frameError answers a TCP message whose framing is ambiguous (transport.FrameError) with 400 and the
// reason; the transport then closes the connection. It runs on the connection's reader, once per connection.
func (e *Engine) frameError(head []byte, reason string, src netip.AddrPort, local *Listener, conn *transport.Conn) {
	m := newMsg()
	defer m.release()
	m.Buf = append(m.Buf[:0], head...)
	m.Src, m.Proto, m.Local, m.conn, m.E = src, conn.Proto(), local, conn, e
	rej := &rejectError{code: 400, reason: reason, kind: rejFraming}
	if err := m.scan(); err != nil {
		rej.err = err
		m.Raw.HdrsEnd = 0 // nothing to answer
	}
	e.malformed(m, rej)
}

// sentBy is what Via and Record-Route name for a socket address: [core] advertise or the address.
func (e *Engine) sentBy(a netip.AddrPort) string {
	if adv := e.cfg.Core.Advertise; adv != "" {
		host, port, _ := SplitHostPort(adv)
		if port == 0 {
			port = int(a.Port())
		}
		return host + ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
}

// send writes bytes to dst over proto, from the listener local when it fits the protocol and family.
// For a stream transport it queues them on a connection to dst, opening one (asynchronously) unless noConnect; it never
// waits on the network.
func (e *Engine) send(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool) error {
	if e.capture != nil {
		return e.captureSend(proto, local, dst, b)
	}
	if len(e.taps) > 0 {
		e.tapSent(proto, local, dst, b)
	}
	return e.tr.Send(proto, local, dst, b, noConnect, nil)
}

// sendNotify is send where a TCP message that fails after it was queued (the connection could not be made
// or broke) is reported to onErr, on the connection's goroutine.
func (e *Engine) sendNotify(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool, onErr func(error)) error {
	if e.capture != nil {
		return e.captureSend(proto, local, dst, b)
	}
	if len(e.taps) > 0 {
		e.tapSent(proto, local, dst, b)
	}
	return e.tr.Send(proto, local, dst, b, noConnect, onErr)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// ConnID is the id of the stream connection m came on ($conid, KSR.kx.get_conid), -1 for UDP as in
// Kamailio.
func (m *Msg) ConnID() int {
	if m.conn == nil {
		return -1
	}
	return m.conn.ID()
}

// CloseConn closes the stream connection with id (KSR.websocket.close ...): a WebSocket with a close frame
// carrying code and reason. False when there is no such connection.
func (e *Engine) CloseConn(id, code int, reason string) bool {
	c := e.tr.ConnByID(id)
	if c == nil {
		return false
	}
	c.CloseWith(code, reason)
	return true
}

// ConnOpen reports whether a stream connection over proto to dst is open (a registered WebSocket client
// is reachable only while its connection is).
func (e *Engine) ConnOpen(proto Proto, dst netip.AddrPort) bool {
	return e.tr.ConnTo(proto, dst) != nil
}

// ListenerByName finds a listening socket given as "proto:ip:port" (Kamailio's socket parameter), nil when
// none matches.
func (e *Engine) ListenerByName(s string) *Listener {
	p, rest, ok := strings.Cut(s, ":")
	if !ok {
		return nil
	}
	proto, ok := ParseProto(p)
	if !ok {
		return nil
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		return nil
	}
	for _, l := range e.Listeners() {
		if l.Proto == proto && l.Addr == ap {
			return l
		}
	}
	return nil
}
