package transport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine/rawsip"
)

// Handler receives one message a listener read: b is valid only during the call (the reader reuses its
// buffer), conn is the TCP connection it came on (nil for UDP). The handler must not wait on the network;
// for TCP it may wait for room (the reader stops reading, which pushes back on the sender).
type Handler func(b []byte, src netip.AddrPort, proto Proto, local *Listener, conn *Conn)

// Options configure a Transport.
type Options struct {
	ReadSize int           // [core] udp_read_size: the datagram buffer and the largest TCP message
	MaxConns int           // [core] tcp_max_connections
	Lifetime time.Duration // [core] tcp_connection_lifetime: an idle TCP connection is closed after it
	// SentBy gives what Via and Record-Route name for a socket address ([core] advertise or the address).
	SentBy func(netip.AddrPort) string
	Handle Handler
	// StreamError is called when a TCP stream breaks inside a message (counted as a parse drop).
	StreamError func()
	// FrameError is called, on the connection's reader, with the headers of a TCP message that could be
	// framed differently than the parser reads it (a *FrameError from ReadFrame): it answers 400 with the
	// reason (the handler writes to conn); then the connection is shut down, as nothing after that message
	// can be trusted to start where the sender meant. Optional.
	FrameError func(head []byte, reason string, src netip.AddrPort, local *Listener, conn *Conn)
	Log        *slog.Logger
	// HandshakeTimeout bounds an accepted TLS handshake plus WebSocket upgrade, and an outgoing TLS
	// handshake: a peer that stalls or sends nothing is closed after it.
	HandshakeTimeout time.Duration
	WS               WSOptions
}

// Transport is the set of listeners and the TCP connection table.
type Transport struct {
	o         Options
	listeners []*Listener

	connMu sync.Mutex
	conns  map[connKey]*Conn // stream connections (TCP, TLS, WS, WSS) by protocol and peer
	byID   map[int64]*Conn   // the same by id ($conid)
	tls    atomic.Pointer[TLSState]
	// srvCfg is the tls.Config of accepted handshakes (serverTLS): it reads tls at each handshake.
	srvOnce sync.Once
	srvCfg  *tls.Config
	namesMu sync.Mutex
	names   map[netip.AddrPort]string // TLS destinations resolved from a name (NoteServerName)

	srcMu    sync.RWMutex
	srcCache map[netip.Addr]netip.Addr // wildcard sockets: local address per destination
}

// New makes a transport with no listener yet.
func New(o Options) *Transport {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SentBy == nil {
		o.SentBy = func(a netip.AddrPort) string { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String() }
	}
	if o.StreamError == nil {
		o.StreamError = func() {}
	}
	if o.FrameError == nil {
		o.FrameError = func([]byte, string, netip.AddrPort, *Listener, *Conn) {}
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	return &Transport{o: o, conns: map[connKey]*Conn{}, byID: map[int64]*Conn{}}
}

// Listeners returns the bound sockets.
func (t *Transport) Listeners() []*Listener { return t.listeners }

// Listener is one listening socket.
type Listener struct {
	Proto Proto
	Addr  netip.AddrPort // bound address (the real port when 0 was asked for)
	// SentBy is what goes into Via and Record-Route for this socket: [core] advertise or the address.
	SentBy string
	udp    *net.UDPConn
	tcp    *net.TCPListener

	// A wildcard socket (0.0.0.0, [::]) has no address to name in Via and Record-Route: each local address
	// it sends from gets a derived Listener (same socket, that address), made once and kept in derived, so
	// the same socket and address is always the same *Listener (Record-Route compares them).
	wild    bool
	parent  *Listener // the wildcard socket a derived Listener belongs to
	dmu     sync.Mutex
	derived map[netip.Addr]*Listener
}

// Wildcard reports whether the socket is bound to 0.0.0.0 or [::] (or derives from one).
func (l *Listener) Wildcard() bool { return l.wild || l.parent != nil }

// Fits reports whether the socket can send to ip: same family, or a dual-stack [::] socket.
func (l *Listener) Fits(ip netip.Addr) bool {
	a := l.Addr.Addr()
	if l.parent != nil {
		a = l.parent.Addr.Addr()
	}
	if a.Is6() && a.IsUnspecified() {
		return true
	}
	return a.Unmap().Is4() == ip.Unmap().Is4()
}

func (l *Listener) String() string { return l.Proto.String() + ":" + l.Addr.String() }

// Parent is the wildcard socket a derived Listener belongs to (nil for a bound socket).
func (l *Listener) Parent() *Listener { return l.parent }

// Listen binds a socket and adds it to the transport's listeners.
func (t *Transport) Listen(proto Proto, addr netip.AddrPort) (*Listener, error) {
	l := &Listener{Proto: proto}
	switch proto {
	case UDP:
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, fmt.Errorf("listen %s:%s: %w", proto, addr, err)
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		l.udp = c
		l.Addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	case TCP, TLS, WS, WSS:
		if proto.Secure() && t.tls.Load() == nil {
			return nil, fmt.Errorf("listen %s:%s: needs a [tls] certificate and private_key", proto, addr)
		}
		c, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return nil, fmt.Errorf("listen %s:%s: %w", proto, addr, err)
		}
		l.tcp = c
		l.Addr = c.Addr().(*net.TCPAddr).AddrPort()
	default:
		return nil, fmt.Errorf("listen %s:%s: unsupported protocol", proto, addr)
	}
	l.SentBy = t.o.SentBy(l.Addr)
	l.wild = l.Addr.Addr().IsUnspecified()
	t.listeners = append(t.listeners, l)
	return l, nil
}

// Close closes every listener (the read loops return) and forgets them.
func (t *Transport) Close() {
	for _, l := range t.listeners {
		l.close()
	}
}

// LocalFor is the socket l seen with local address ip: l itself unless l is a wildcard socket.
func (t *Transport) LocalFor(l *Listener, ip netip.Addr) *Listener {
	if l == nil || !l.wild || !ip.IsValid() || ip.IsUnspecified() {
		return l
	}
	ip = ip.Unmap()
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if d := l.derived[ip]; d != nil {
		return d
	}
	if l.derived == nil {
		l.derived = map[netip.Addr]*Listener{}
	}
	if len(l.derived) >= 1024 { // bounded: a host has few addresses; this only guards against surprises
		clear(l.derived)
	}
	a := netip.AddrPortFrom(ip, l.Addr.Port())
	d := &Listener{Proto: l.Proto, Addr: a, SentBy: t.o.SentBy(a), udp: l.udp, tcp: l.tcp, parent: l}
	l.derived[ip] = d
	return d
}

// SrcFor is socket l as it sends to dst: for a wildcard socket, the derived Listener of the local address
// the kernel picks for dst (learnt with a connected UDP socket, which sends nothing, cached per
// destination address).
func (t *Transport) SrcFor(l *Listener, dst netip.Addr) *Listener {
	if l == nil || !l.wild {
		return l
	}
	dst = dst.Unmap()
	t.srcMu.RLock()
	src, ok := t.srcCache[dst]
	t.srcMu.RUnlock()
	if !ok {
		src = sourceAddr(dst)
		t.srcMu.Lock()
		if t.srcCache == nil || len(t.srcCache) >= 4096 {
			t.srcCache = map[netip.Addr]netip.Addr{}
		}
		t.srcCache[dst] = src
		t.srcMu.Unlock()
	}
	return t.LocalFor(l, src)
}

// sourceAddr asks the kernel which local address it would send to dst from.
func sourceAddr(dst netip.Addr) netip.Addr {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

func (l *Listener) close() {
	if l.udp != nil {
		l.udp.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
}

// Serve runs l's read loop (datagrams, or accepting TCP connections) until l is closed. Parsing is left to
// the handler's side (the workers), so it spreads over them.
func (t *Transport) Serve(l *Listener) {
	if l.Proto == UDP {
		t.serveUDP(l)
	} else {
		t.serveTCP(l)
	}
}

func (t *Transport) serveUDP(l *Listener) {
	buf := make([]byte, t.o.ReadSize)
	for {
		n, src, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.o.Log.Warn("udp read", "listener", l.String(), "err", err)
			continue
		}
		if n <= 4 { // keep-alive CRLFs and noise
			continue
		}
		t.o.Handle(buf[:n], src, UDP, t.SrcFor(l, src.Addr()), nil)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errFrameTooBig = errors.New("message larger than udp_read_size")

// frameErrorLinger is how long a connection whose framing broke is read (and discarded) after its 400.
const frameErrorLinger = 2 * time.Second

// FrameError is a message whose length on the stream is ambiguous: its headers as the parser reads them
// (engine/rawsip) give no single valid Content-Length (duplicates that differ, Content-Length and l: that
// disagree, a value that is not a number), or do not parse at all. Framing on one reading while the parser
// takes another would let one byte sequence be two different messages (request smuggling), so the message
// is answered 400 and the connection closed.
type FrameError struct {
	Reason string // the 400's reason phrase: "Content-Length mismatch", "Duplicate Content-Length header", ...
	Head   []byte // the headers read (start line to the empty line)
}

func (e *FrameError) Error() string { return "tcp framing: " + e.Reason }

// scanPool holds the positions frameLength scans into: it runs per TCP message, and must not allocate.
var scanPool = sync.Pool{New: func() any { return new(rawsip.Msg) }}

// frameLength reads the body length of a message from its headers exactly as the engine's parser does:
// rawsip.Scan's header lines (CRLF or bare LF ends, folded continuation lines), names matched whole
// ("Content-Length" or compact "l", any case), values of decimal digits only. Every Content-Length must
// agree; none means no body (RFC 3261 §18.3 requires one on streams). reason is set when the length is
// ambiguous; err when it is larger than max.
func frameLength(head []byte, max int) (n int, reason string, err error) {
	raw := scanPool.Get().(*rawsip.Msg)
	defer scanPool.Put(raw)
	if err := rawsip.Scan(head, raw); err != nil || raw.Body != len(head) {
		return 0, "Bad header", nil
	}
	full, compact := -1, -1
	for _, h := range raw.Hdrs {
		name := h.Name(head)
		isCompact := len(name) == 1 && name[0]|0x20 == 'l'
		if !isCompact && !(len(name) == len("content-length") && bytes.EqualFold(name, []byte("content-length"))) {
			continue
		}
		v := h.Value(head)
		if len(v) == 0 {
			return 0, "Bad Content-Length", nil
		}
		n := 0
		for _, c := range v {
			if c < '0' || c > '9' {
				return 0, "Bad Content-Length", nil
			}
			if n = n*10 + int(c-'0'); n > max {
				return 0, "", errFrameTooBig
			}
		}
		prev := &full
		if isCompact {
			prev = &compact
		}
		if *prev >= 0 && *prev != n {
			return 0, "Duplicate Content-Length header", nil
		}
		*prev = n
	}
	switch {
	case full >= 0 && compact >= 0 && full != compact:
		return 0, "Content-Length mismatch", nil
	case full >= 0:
		return full, "", nil
	case compact >= 0:
		return compact, "", nil
	}
	return 0, "", nil
}

// ReadFrame reads one message from a stream; nil, nil for a CRLFCRLF keep-alive. Lines end at LF (with or
// without CR), as rawsip.Scan reads them; the body length is frameLength's. A *FrameError carries the
// headers of a message whose length is ambiguous: the stream cannot be read on after it.
func ReadFrame(r *bufio.Reader, maxSize int) ([]byte, error) {
	var msg []byte
	partial := false // the line read so far did not fit the reader's buffer: line is its continuation
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// a line longer than the reader's buffer (kept small: idle connections hold it): go on reading it
			msg = append(msg, line...)
			if len(msg) > maxSize {
				return nil, errFrameTooBig
			}
			partial = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if partial { // the end of a long line: never an empty line
			partial = false
			msg = append(msg, line...)
			if len(msg) > maxSize {
				return nil, errFrameTooBig
			}
			continue
		}
		if len(msg) == 0 && (len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			// leading CRLF: keep-alive ping (double CRLF) or noise
			if b, err := r.Peek(1); err == nil && (b[0] == '\r' || b[0] == '\n') {
				r.ReadSlice('\n')
				return nil, nil
			}
			continue
		}
		msg = append(msg, line...)
		if len(msg) > maxSize {
			return nil, errFrameTooBig
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break // end of headers
		}
	}
	clen, reason, err := frameLength(msg, maxSize)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return nil, &FrameError{Reason: reason, Head: msg}
	}
	if len(msg)+clen > maxSize {
		return nil, errFrameTooBig
	}
	start := len(msg)
	msg = append(msg, make([]byte, clen)...)
	if _, err := io.ReadFull(r, msg[start:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// Send writes b to dst over proto from the listener local (or, when local does not fit the protocol and
// family, the listener ListenerFor picks). For TCP it queues b on a connection to dst, opening one
// (asynchronously) unless noConnect; it never waits on the network. A TCP message that fails after it was
// queued (the connection could not be made or broke) is reported to onErr (optional), on the connection's
// goroutine.
func (t *Transport) Send(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool, onErr func(error)) error {
	if local == nil || local.Proto != proto || !local.Fits(dst.Addr()) {
		local = t.ListenerFor(nil, proto, dst.Addr())
		if local == nil {
			return fmt.Errorf("send to %s:%s: no %s listener for that address family", proto, dst, proto)
		}
	}
	switch proto {
	case UDP:
		_, err := local.udp.WriteToUDPAddrPort(b, dst)
		if err != nil {
			return fmt.Errorf("send udp %s -> %s: %w", local.Addr, dst, err)
		}
		return nil
	case TCP, TLS, WS, WSS:
		tc, err := t.connTo(local, proto, dst, noConnect)
		if err != nil {
			return err
		}
		if err := tc.queue(b, onErr); err != nil {
			return fmt.Errorf("send %s -> %s: %w", proto, dst, err)
		}
		return nil
	}
	return fmt.Errorf("send: unsupported protocol %v", proto)
}

// ListenerFor picks the socket a message to ip over proto leaves from: prefer (the one it arrived on) when
// it has that transport and address family. A wildcard socket gives the Listener of the local address
// used to reach ip.
func (t *Transport) ListenerFor(prefer *Listener, proto Proto, ip netip.Addr) *Listener {
	if prefer != nil && prefer.Proto == proto && prefer.Fits(ip) {
		if prefer.parent != nil {
			prefer = prefer.parent
		}
		return t.SrcFor(prefer, ip)
	}
	return t.SrcFor(t.Pick(proto, ip), ip)
}

// Pick returns a listener of proto for ip's address family (a wildcard one fits both when dual-stack), else
// any listener of proto, else nil.
func (t *Transport) Pick(proto Proto, ip netip.Addr) *Listener {
	var fallback *Listener
	for _, l := range t.listeners {
		if l.Proto != proto {
			continue
		}
		if l.Addr.Addr().Is4() == ip.Unmap().Is4() || l.Fits(ip) && l.wild {
			return l
		}
		if fallback == nil {
			fallback = l
		}
	}
	return fallback
}

// connTo returns the connection to dst, or a new one whose writer goroutine connects (messages queued
// meanwhile are written once it is up).
func (t *Transport) connTo(local *Listener, proto Proto, dst netip.AddrPort, noConnect bool) (*Conn, error) {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if tc := t.conns[connKey{proto, dst}]; tc != nil {
		return tc, nil
	}
	if proto.WebSocket() {
		// As Kamailio: WebSocket clients (browsers) connect to the proxy; it opens no WebSocket itself.
		return nil, fmt.Errorf("send %s -> %s: no open connection (the client has gone)", proto, dst)
	}
	if noConnect {
		return nil, fmt.Errorf("send %s -> %s: no connection and set_reply_no_connect is set", proto, dst)
	}
	if len(t.conns) >= t.o.MaxConns {
		return nil, fmt.Errorf("connect %s %s: tcp_max_connections reached", proto, dst)
	}
	tc := t.newConn(nil, proto, dst, local)
	tc.writing = true // the writer below connects, then writes what was queued meanwhile
	t.conns[connKey{proto, dst}] = tc
	t.byID[tc.id] = tc
	go t.writeLoop(tc, true)
	return tc, nil
}

// CloseConns closes every TCP connection.
func (t *Transport) CloseConns() {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	for _, tc := range t.conns {
		tc.close()
	}
}
