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
	l.SentBy = l.Addr.String()
	if adv := e.cfg.Core.Advertise; adv != "" {
		host, port, _ := SplitHostPort(adv)
		if port == 0 {
			port = int(l.Addr.Port())
		}
		l.SentBy = host + ":" + strconv.Itoa(port)
	}
	return l, nil
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
		m.Src, m.Proto, m.Local = src, UDP, l
		e.enqueue(m, false)
	}
}

// tcpConn is one TCP connection, accepted or opened by the proxy.
type tcpConn struct {
	c      *net.TCPConn
	remote netip.AddrPort
	local  *Listener
	wmu    sync.Mutex
}

func (c *tcpConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.c.Write(b)
	return err
}

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
		tc := &tcpConn{c: c, remote: c.RemoteAddr().(*net.TCPAddr).AddrPort(), local: l}
		if !e.addConn(tc) {
			e.log.Warn("tcp connection refused: tcp_max_connections reached", "remote", tc.remote.String())
			c.Close()
			continue
		}
		go e.readTCP(tc)
	}
}

func (e *Engine) addConn(tc *tcpConn) bool {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if len(e.conns) >= e.cfg.Core.TCPMaxConnections {
		return false
	}
	if old, ok := e.conns[tc.remote]; ok && old != tc {
		old.c.Close()
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
	tc.c.Close()
}

// readTCP frames messages on a stream (headers, then Content-Length bytes of body) and queues them.
func (e *Engine) readTCP(tc *tcpConn) {
	defer e.dropConn(tc)
	lifetime := time.Duration(e.cfg.Core.TCPLifetime) * time.Second
	r := bufio.NewReaderSize(tc.c, 16<<10)
	for {
		_ = tc.c.SetReadDeadline(time.Now().Add(lifetime))
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
// For TCP it reuses a connection to dst or opens one unless noConnect.
func (e *Engine) send(proto Proto, local *Listener, dst netip.AddrPort, b []byte, noConnect bool) error {
	if local == nil || local.Proto != proto || local.Addr.Addr().Is4() != dst.Addr().Unmap().Is4() {
		local = e.pickListener(proto, dst.Addr())
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
		if err := tc.write(b); err != nil {
			e.dropConn(tc)
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
		if l.Addr.Addr().Is4() == ip.Unmap().Is4() {
			return l
		}
		if fallback == nil {
			fallback = l
		}
	}
	return fallback
}

func (e *Engine) tcpConnTo(local *Listener, dst netip.AddrPort, noConnect bool) (*tcpConn, error) {
	e.connMu.Lock()
	tc := e.conns[dst]
	e.connMu.Unlock()
	if tc != nil {
		return tc, nil
	}
	if noConnect {
		return nil, fmt.Errorf("send tcp -> %s: no connection and set_reply_no_connect is set", dst)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local.Addr.Addr().AsSlice()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, fmt.Errorf("connect tcp %s: %w", dst, err)
	}
	tc = &tcpConn{c: c.(*net.TCPConn), remote: dst, local: local}
	// Another worker may have connected to dst meanwhile: keep its connection (it may be writing on it).
	e.connMu.Lock()
	if old := e.conns[dst]; old != nil {
		e.connMu.Unlock()
		c.Close()
		return old, nil
	}
	if len(e.conns) >= e.cfg.Core.TCPMaxConnections {
		e.connMu.Unlock()
		c.Close()
		return nil, fmt.Errorf("connect tcp %s: tcp_max_connections reached", dst)
	}
	e.conns[dst] = tc
	e.connMu.Unlock()
	go e.readTCP(tc)
	return tc, nil
}

func (e *Engine) closeConns() {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	for _, tc := range e.conns {
		tc.c.Close()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

var _ = slog.LevelInfo
