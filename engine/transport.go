package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

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

// fits reports whether the socket can send to ip: same family, or a dual-stack [::] socket.
func (l *Listener) fits(ip netip.Addr) bool {
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

func (e *Engine) listen(la ListenAddr) (*Listener, error) {
	l := &Listener{Proto: la.Proto}
	switch la.Proto {
	case UDP:
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(la.Addr))
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", la, err)
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		l.udp = c
		l.Addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	case TCP:
		c, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(la.Addr))
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", la, err)
		}
		l.tcp = c
		l.Addr = c.Addr().(*net.TCPAddr).AddrPort()
	}
	l.SentBy = e.sentBy(l.Addr)
	l.wild = l.Addr.Addr().IsUnspecified()
	return l, nil
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

// localFor is the socket l seen with local address ip: l itself unless l is a wildcard socket.
func (e *Engine) localFor(l *Listener, ip netip.Addr) *Listener {
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
	d := &Listener{Proto: l.Proto, Addr: a, SentBy: e.sentBy(a), udp: l.udp, tcp: l.tcp, parent: l}
	l.derived[ip] = d
	return d
}

// srcFor is socket l as it sends to dst: for a wildcard socket, the derived Listener of the local address
// the kernel picks for dst (learnt with a connected UDP socket, which sends nothing, cached per
// destination address).
func (e *Engine) srcFor(l *Listener, dst netip.Addr) *Listener {
	if l == nil || !l.wild {
		return l
	}
	dst = dst.Unmap()
	e.srcMu.RLock()
	src, ok := e.srcCache[dst]
	e.srcMu.RUnlock()
	if !ok {
		src = sourceAddr(dst)
		e.srcMu.Lock()
		if e.srcCache == nil || len(e.srcCache) >= 4096 {
			e.srcCache = map[netip.Addr]netip.Addr{}
		}
		e.srcCache[dst] = src
		e.srcMu.Unlock()
	}
	return e.localFor(l, src)
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

// serveUDP reads datagrams and queues them; parsing happens in the workers so it spreads over them.
func (e *Engine) serveUDP(l *Listener) {
	buf := make([]byte, e.cfg.Core.UDPReadSize)
	for {
		n, src, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("udp read", "listener", l.String(), "err", err)
			continue
		}
		if n <= 4 { // keep-alive CRLFs and noise
			continue
		}
		m := newMsg()
		m.Buf = append(m.Buf[:0], buf[:n]...)
		m.Src, m.Proto, m.Local = src, UDP, e.srcFor(l, src.Addr())
		e.enqueue(m, false)
	}
}

// tcpConn is one TCP connection, accepted or opened by the proxy. Writes never block the caller: they are
// queued (bounded) and written by the connection's own writer goroutine, which also connects an outgoing
// connection first; a full queue or a dead connection is a send error at once.
type tcpConn struct {
	conn   atomic.Pointer[net.TCPConn] // nil while an outgoing connection is being made
	remote netip.AddrPort
	local  *Listener
	wq     chan outPkt
	queued atomic.Int64  // bytes in wq
	done   chan struct{} // closed when the connection is closed
	once   sync.Once
}

// outPkt is a queued write; onErr (optional) learns that it was not written.
type outPkt struct {
	b     []byte
	onErr func(error)
}

// tcpWriteQueue and tcpWriteQueueBytes bound what waits to be written on one connection: a next hop that
// stops reading fills them within a second of traffic, after which sends to it fail fast instead of piling
// up memory (at most 1 MiB per connection).
const (
	tcpWriteQueue      = 512
	tcpWriteQueueBytes = 1 << 20
)

var (
	errTCPQueueFull = errors.New("tcp write queue full (the next hop does not read)")
	errTCPClosed    = errors.New("tcp connection closed")
)

func newTCPConn(c *net.TCPConn, remote netip.AddrPort, local *Listener) *tcpConn {
	tc := &tcpConn{remote: remote, local: local, wq: make(chan outPkt, tcpWriteQueue), done: make(chan struct{})}
	if c != nil {
		tc.conn.Store(c)
	}
	return tc
}

// write queues a copy of b (callers reuse their buffers).
func (c *tcpConn) write(b []byte) error { return c.queue(b, nil) }

func (c *tcpConn) queue(b []byte, onErr func(error)) error {
	select {
	case <-c.done:
		return errTCPClosed
	default:
	}
	if c.queued.Add(int64(len(b))) > tcpWriteQueueBytes {
		c.queued.Add(-int64(len(b)))
		return errTCPQueueFull
	}
	select {
	case c.wq <- outPkt{b: append([]byte(nil), b...), onErr: onErr}:
		return nil
	default:
		c.queued.Add(-int64(len(b)))
		return errTCPQueueFull
	}
}

func (c *tcpConn) close() {
	c.once.Do(func() {
		close(c.done)
		if tc := c.conn.Load(); tc != nil {
			tc.Close()
		}
	})
}

// writeLoop connects (when dial) then writes queued messages until the connection ends; what is left in the
// queue then fails.
func (e *Engine) writeLoop(tc *tcpConn, dial bool) {
	fail := func(err error) {
		e.dropConn(tc)
		for {
			select {
			case p := <-tc.wq:
				tc.queued.Add(-int64(len(p.b)))
				if p.onErr != nil {
					p.onErr(err)
				}
			default:
				return
			}
		}
	}
	if dial {
		d := net.Dialer{Timeout: tcpConnectTimeout}
		if tc.local != nil {
			d.LocalAddr = &net.TCPAddr{IP: tc.local.Addr.Addr().AsSlice()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), tcpConnectTimeout)
		go func() { // a close (shutdown, lifetime) ends the attempt
			select {
			case <-tc.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		c, err := d.DialContext(ctx, "tcp", tc.remote.String())
		cancel()
		if err != nil {
			e.log.Info("tcp connect failed", "remote", tc.remote.String(), "err", err)
			fail(fmt.Errorf("connect tcp %s: %w", tc.remote, err))
			return
		}
		tc.conn.Store(c.(*net.TCPConn))
		select {
		case <-tc.done: // closed while connecting
			c.Close()
			fail(errTCPClosed)
			return
		default:
		}
		go e.readTCP(tc)
	}
	c := tc.conn.Load()
	for {
		select {
		case p := <-tc.wq:
			_ = c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			_, err := c.Write(p.b)
			tc.queued.Add(-int64(len(p.b)))
			if err != nil {
				err = fmt.Errorf("send tcp -> %s: %w", tc.remote, err)
				fail(err) // first: a failover to the same address must not find this connection
				if p.onErr != nil {
					p.onErr(err)
				}
				return
			}
		case <-tc.done:
			fail(errTCPClosed)
			return
		}
	}
}

const (
	tcpConnectTimeout = 5 * time.Second
	tcpWriteTimeout   = 10 * time.Second
)

func (e *Engine) serveTCP(l *Listener) {
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("tcp accept", "listener", l.String(), "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tc := newTCPConn(c, c.RemoteAddr().(*net.TCPAddr).AddrPort(), e.localFor(l, c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()))
		if !e.addConn(tc) {
			e.log.Warn("tcp connection refused: tcp_max_connections reached", "remote", tc.remote.String())
			c.Close()
			continue
		}
		go e.readTCP(tc)
		go e.writeLoop(tc, false)
	}
}

func (e *Engine) addConn(tc *tcpConn) bool {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if len(e.conns) >= e.cfg.Core.TCPMaxConnections {
		return false
	}
	if old, ok := e.conns[tc.remote]; ok && old != tc {
		old.close()
	}
	e.conns[tc.remote] = tc
	return true
}

func (e *Engine) dropConn(tc *tcpConn) {
	e.connMu.Lock()
	if e.conns[tc.remote] == tc {
		delete(e.conns, tc.remote)
	}
	e.connMu.Unlock()
	tc.close()
}

// readTCP frames messages on a stream (headers, then Content-Length bytes of body) and queues them.
func (e *Engine) readTCP(tc *tcpConn) {
	defer e.dropConn(tc)
	lifetime := time.Duration(e.cfg.Core.TCPLifetime) * time.Second
	c := tc.conn.Load()
	r := bufio.NewReaderSize(c, 16<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(lifetime))
		msg, err := readFrame(r, e.cfg.Core.UDPReadSize)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				e.log.Info("tcp connection closed", "remote", tc.remote.String(), "err", err)
				e.stats.dropParse.Add(1)
			}
			return
		}
		if msg == nil { // CRLF keep-alive (RFC 5626 §4.4.1): answer a double CRLF ping with a pong
			_ = tc.write([]byte("\r\n"))
			continue
		}
		m := newMsg()
		m.Buf = append(m.Buf[:0], msg...)
		m.Src, m.Proto, m.Local, m.conn = tc.remote, TCP, tc.local, tc
		e.enqueue(m, true)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errFrameTooBig = errors.New("message larger than udp_read_size")

// readFrame reads one message from a stream; nil, nil for a CRLFCRLF keep-alive.
func readFrame(r *bufio.Reader, maxSize int) ([]byte, error) {
	var msg []byte
	clen := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errFrameTooBig
			}
			return nil, err
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
		if clen < 0 {
			clen = contentLength(line)
		}
	}
	if clen < 0 {
		clen = 0 // RFC 3261 §18.3: required on streams; treat a missing one as no body
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

// contentLength returns the value of a Content-Length (or "l") header line, -1 if it is not one.
func contentLength(line []byte) int {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return -1
	}
	name := bytes.TrimSpace(line[:colon])
	if !(bytes.EqualFold(name, []byte("content-length")) || bytes.EqualFold(name, []byte("l"))) {
		return -1
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(line[colon+1:])))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// send writes bytes to dst over proto, from the listener local when it fits the protocol and family.
// For TCP it queues them on a connection to dst, opening one (asynchronously) unless noConnect; it never
// waits on the network.
func (e *Engine) send(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool) error {
	return e.sendNotify(proto, local, dst, b, noConnect, nil)
}

// sendNotify is send where a TCP message that fails after it was queued (the connection could not be made
// or broke) is reported to onErr, on the connection's goroutine.
func (e *Engine) sendNotify(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool, onErr func(error)) error {
	if local == nil || local.Proto != proto || !local.fits(dst.Addr()) {
		local = e.ListenerFor(nil, Target{Proto: proto, Addr: dst})
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
	case TCP:
		tc, err := e.tcpConnTo(local, dst, noConnect)
		if err != nil {
			return err
		}
		if err := tc.queue(b, onErr); err != nil {
			return fmt.Errorf("send tcp -> %s: %w", dst, err)
		}
		return nil
	}
	return fmt.Errorf("send: unsupported protocol %v", proto)
}

func (e *Engine) pickListener(proto Proto, ip netip.Addr) *Listener {
	var fallback *Listener
	for _, l := range e.listeners {
		if l.Proto != proto {
			continue
		}
		if l.Addr.Addr().Is4() == ip.Unmap().Is4() || l.fits(ip) && l.wild {
			return l
		}
		if fallback == nil {
			fallback = l
		}
	}
	return fallback
}

// tcpConnTo returns the connection to dst, or a new one whose writer goroutine connects (messages queued
// meanwhile are written once it is up).
func (e *Engine) tcpConnTo(local *Listener, dst netip.AddrPort, noConnect bool) (*tcpConn, error) {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if tc := e.conns[dst]; tc != nil {
		return tc, nil
	}
	if noConnect {
		return nil, fmt.Errorf("send tcp -> %s: no connection and set_reply_no_connect is set", dst)
	}
	if len(e.conns) >= e.cfg.Core.TCPMaxConnections {
		return nil, fmt.Errorf("connect tcp %s: tcp_max_connections reached", dst)
	}
	tc := newTCPConn(nil, dst, local)
	e.conns[dst] = tc
	go e.writeLoop(tc, true)
	return tc, nil
}

func (e *Engine) closeConns() {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	for _, tc := range e.conns {
		tc.close()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

var _ = slog.LevelInfo
