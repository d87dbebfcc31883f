package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one stream connection (TCP, TLS, WS or WSS), accepted or opened by the proxy. Writes never block
// the caller: they are queued (bounded) and written by the connection's writer goroutine, which also
// connects an outgoing connection first (and makes its TLS handshake); a full queue or a dead connection is
// a send error at once. The writer runs while there is something to write and ends when the queue is
// empty (the next write starts it again): an idle connection costs its reader goroutine only, and there is
// never more than one writer per connection.
type Conn struct {
	raw    atomic.Pointer[net.TCPConn] // nil while an outgoing connection is being made
	rw     net.Conn                    // raw, or the tls.Conn over it: set before ready is closed
	proto  Proto
	id     int64 // $conid: unique in the process, never reused
	remote netip.AddrPort
	local  *Listener
	// The write queue: a slice under mu rather than a channel, so that an idle connection holds no queue
	// memory (a 512-slot channel is 20 KB per connection).
	mu       sync.Mutex
	wq       []outPkt
	spare    []outPkt // the writer's previous batch, reused
	queued   int      // bytes in wq
	writing  bool     // a writer goroutine runs (it takes everything queued before it ends)
	accepted bool     // the peer connected to the proxy
	tr       *Transport
	ready    chan struct{} // closed once the TLS handshake / WebSocket upgrade is done (writes wait for it)
	done     chan struct{} // closed when the connection is closed
	once     sync.Once
}

// outPkt is a queued write; onErr (optional) learns that it was not written.
type outPkt struct {
	b          []byte
	onErr      func(error)
	closeWrite bool // after what was queued before it, shut the write side (FIN): see Conn.shutdownWrite
	framed     bool // b is a whole WebSocket frame (a control frame the reader answers with)
}

// tcpWriteQueue and tcpWriteQueueBytes bound what waits to be written on one connection: a next hop that
// stops reading fills them within a second of traffic, after which sends to it fail fast instead of piling
// up memory (at most 1 MiB per connection).
const (
	tcpWriteQueue      = 512
	tcpWriteQueueBytes = 1 << 20
)

var (
	errTCPQueueFull = errors.New("write queue full (the next hop does not read)")
	errTCPClosed    = errors.New("connection closed")
)

var connIDs atomic.Int64

func (t *Transport) newConn(c *net.TCPConn, proto Proto, remote netip.AddrPort, local *Listener) *Conn {
	tc := &Conn{proto: proto, id: connIDs.Add(1), remote: remote, local: local,
		ready: make(chan struct{}), done: make(chan struct{}), tr: t}
	if c != nil {
		tc.raw.Store(c)
		tc.accepted = true
	}
	return tc
}

// Write queues a copy of b (callers reuse their buffers); it never waits on the network.
func (c *Conn) Write(b []byte) error { return c.queue(b, nil) }

// shutdownWrite queues a FIN after what is queued now (a reply to a message that broke the framing), so
// the peer reads that reply and then the end of the stream. When the queue is full the connection closes.
func (c *Conn) shutdownWrite() {
	if c.queuePkt(outPkt{closeWrite: true}) != nil {
		c.close()
	}
}

// Remote is the peer's address.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Proto is the connection's transport.
func (c *Conn) Proto() Proto { return c.proto }

// ID is the connection's id ($conid, KSR.kx.get_conid): unique while the process runs.
func (c *Conn) ID() int { return int(c.id) }

// Close closes the connection (KSR.websocket.ws_close, shutdown).
func (c *Conn) Close() { c.close() }

func (c *Conn) queue(b []byte, onErr func(error)) error {
	return c.queuePkt(outPkt{b: append([]byte(nil), b...), onErr: onErr})
}

func (c *Conn) queuePkt(p outPkt) error {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return errTCPClosed
	default:
	}
	if len(c.wq) >= tcpWriteQueue || c.queued+len(p.b) > tcpWriteQueueBytes {
		c.mu.Unlock()
		return errTCPQueueFull
	}
	c.wq = append(c.wq, p)
	c.queued += len(p.b)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.tr.writeLoop(c, false)
	}
	return nil
}

// take hands the writer what is queued; when nothing is, the writer ends (writing is cleared under the
// same lock queuePkt appends under, so a message queued meanwhile starts a new writer).
func (c *Conn) take() []outPkt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.wq) == 0 {
		c.writing = false
		return nil
	}
	batch := c.wq
	c.wq, c.spare = c.spare[:0], nil
	c.queued = 0
	return batch
}

// giveBack returns a written batch's slice for reuse, unless it grew large (a burst): an idle connection
// keeps only a small one.
func (c *Conn) giveBack(batch []outPkt) {
	if cap(batch) > 16 {
		return
	}
	clear(batch)
	c.mu.Lock()
	c.spare = batch[:0]
	c.mu.Unlock()
}

func (c *Conn) close() {
	c.once.Do(func() {
		close(c.done)
		if tc := c.raw.Load(); tc != nil {
			tc.Close()
		}
	})
}

// writeLoop connects (when dial) then writes queued messages until the connection ends; what is left in the
// queue then fails. An accepted TLS or WebSocket connection's writer waits for its handshake first.
func (t *Transport) writeLoop(tc *Conn, dial bool) {
	failBatch := func(batch []outPkt, err error) {
		for _, p := range batch {
			if p.onErr != nil {
				p.onErr(err)
			}
		}
	}
	fail := func(err error) {
		t.dropConn(tc) // closes done first: nothing is queued after the queue is taken below
		tc.mu.Lock()
		batch := tc.wq
		tc.wq, tc.queued = nil, 0
		tc.mu.Unlock()
		failBatch(batch, err)
	}
	if dial {
		if err := t.dial(tc); err != nil {
			fail(err)
			return
		}
		close(tc.ready)
		go t.readConn(tc)
	} else {
		select {
		case <-tc.ready:
		case <-tc.done:
			fail(errTCPClosed)
			return
		}
	}
	c, raw := tc.rw, tc.raw.Load()
	var frame []byte
	for {
		select {
		case <-tc.done:
			fail(errTCPClosed)
			return
		default:
		}
		batch := tc.take()
		if batch == nil {
			return // idle: the next queued message starts a writer again
		}
		for i, p := range batch {
			if p.closeWrite {
				_ = raw.CloseWrite()
				continue
			}
			b := p.b
			if tc.proto.WebSocket() && !p.framed {
				frame = appendWSFrame(frame[:0], opText, b)
				b = frame
			}
			_ = c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			_, err := c.Write(b)
			if err != nil {
				err = fmt.Errorf("send %s -> %s: %w", tc.proto, tc.remote, err)
				fail(err) // first: a failover to the same address must not find this connection
				failBatch(batch[i:], err)
				return
			}
		}
		if cap(frame) > 4<<10 {
			frame = nil // do not keep a big message's buffer for an idle connection
		}
		tc.giveBack(batch)
	}
}

// dial connects an outgoing TCP or TLS connection (the proxy opens no WebSocket connection: browsers
// connect to it).
func (t *Transport) dial(tc *Conn) error {
	d := net.Dialer{Timeout: connectTimeout}
	if tc.local != nil {
		d.LocalAddr = &net.TCPAddr{IP: tc.local.Addr.Addr().AsSlice()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout+t.o.HandshakeTimeout)
	defer cancel()
	go func() { // a close (shutdown, lifetime) ends the attempt
		select {
		case <-tc.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := d.DialContext(ctx, "tcp", tc.remote.String())
	if err != nil {
		t.o.Log.Info(tc.proto.String()+" connect failed", "remote", tc.remote.String(), "err", err)
		return fmt.Errorf("connect %s %s: %w", tc.proto, tc.remote, err)
	}
	tc.raw.Store(c.(*net.TCPConn))
	tc.rw = c
	select {
	case <-tc.done: // closed while connecting
		c.Close()
		return errTCPClosed
	default:
	}
	if tc.proto == TLS {
		cfg, err := t.clientTLS(tc.remote)
		if err != nil {
			c.Close()
			return fmt.Errorf("connect tls %s: %w", tc.remote, err)
		}
		tlc := tls.Client(c, cfg)
		hctx, hcancel := context.WithTimeout(ctx, t.o.HandshakeTimeout)
		err = tlc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			t.o.Log.Warn("tls connect failed: "+tlsAlert(err), "remote", tc.remote.String(), "server_name", cfg.ServerName, "err", err)
			c.Close()
			return fmt.Errorf("connect tls %s: %w", tc.remote, err)
		}
		tc.rw = tlc
	}
	return nil
}

const (
	connectTimeout  = 5 * time.Second
	tcpWriteTimeout = 10 * time.Second
)

func (t *Transport) serveTCP(l *Listener) {
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.o.Log.Warn(l.Proto.String()+" accept", "listener", l.String(), "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tc := t.newConn(c, l.Proto, c.RemoteAddr().(*net.TCPAddr).AddrPort(), t.LocalFor(l, c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()))
		if !t.addConn(tc) {
			t.o.Log.Warn(l.Proto.String()+" connection refused: tcp_max_connections reached", "remote", tc.remote.String())
			c.Close()
			continue
		}
		tc.rw = c
		if l.Proto == TCP {
			close(tc.ready)
		}
		go t.readConn(tc)
	}
}

type connKey struct {
	proto Proto
	addr  netip.AddrPort
}

func (t *Transport) addConn(tc *Conn) bool {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if len(t.conns) >= t.o.MaxConns {
		return false
	}
	k := connKey{tc.proto, tc.remote}
	if old, ok := t.conns[k]; ok && old != tc {
		old.close()
	}
	t.conns[k] = tc
	t.byID[tc.id] = tc
	return true
}

func (t *Transport) dropConn(tc *Conn) {
	t.connMu.Lock()
	k := connKey{tc.proto, tc.remote}
	if t.conns[k] == tc {
		delete(t.conns, k)
	}
	delete(t.byID, tc.id)
	t.connMu.Unlock()
	tc.close()
}

// ConnByID is the open connection with id ($conid), or nil.
func (t *Transport) ConnByID(id int) *Conn {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	return t.byID[int64(id)]
}

// ConnTo is the open connection over proto to dst, or nil.
func (t *Transport) ConnTo(proto Proto, dst netip.AddrPort) *Conn {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	return t.conns[connKey{proto, dst}]
}

// readConn makes an accepted connection's TLS handshake and WebSocket upgrade (bounded by the handshake
// timeout: a peer that stalls or sends nothing is closed), then reads its messages.
func (t *Transport) readConn(tc *Conn) {
	select {
	case <-tc.ready: // plain TCP, or an outgoing connection whose writer made the handshake
	default:
		if !t.handshake(tc) {
			t.dropConn(tc)
			return
		}
		close(tc.ready)
		// Read on a fresh goroutine: the handshake's cryptography grew this one's stack, which an idle
		// connection would otherwise keep (a few KB per connection).
		go t.readMessages(tc)
		return
	}
	t.readMessages(tc)
}

func (t *Transport) readMessages(tc *Conn) {
	defer t.dropConn(tc)
	if tc.proto.WebSocket() {
		t.readWS(tc)
		return
	}
	t.readStream(tc)
}

func (t *Transport) handshake(tc *Conn) bool { return t.handshakeOn(tc, tc.raw.Load()) }

// handshakeOn makes the handshake on raw (the TCP connection; a pipe in the fuzz test).
func (t *Transport) handshakeOn(tc *Conn, raw net.Conn) bool {
	deadline := time.Now().Add(t.o.HandshakeTimeout)
	if tc.proto == TLS || tc.proto == WSS {
		tlc := tls.Server(raw, t.serverTLS())
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tlc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.o.Log.Warn("tls connection refused: "+tlsAlert(err), "remote", tc.remote.String(), "listener", tc.local.String(), "err", err)
			}
			return false
		}
		tc.rw = tlc
	}
	if tc.proto.WebSocket() {
		_ = tc.rw.SetDeadline(deadline)
		if err := t.upgradeWS(tc); err != nil {
			t.o.Log.Info("websocket upgrade refused", "remote", tc.remote.String(), "listener", tc.local.String(), "err", err)
			return false
		}
		_ = tc.rw.SetDeadline(time.Time{})
	}
	return true
}

// readStream frames messages on a TCP or TLS stream (headers, then Content-Length bytes of body) and hands
// them on.
func (t *Transport) readStream(tc *Conn) {
	c := tc.rw
	ir := &idleReader{c: c}
	defer ir.release()
	// A peer that connected and sends nothing is closed after the handshake timeout (a TLS peer's handshake
	// was bounded by it already); after its first message, after the connection lifetime.
	wait := t.o.Lifetime
	if tc.accepted {
		wait = min(wait, t.o.HandshakeTimeout)
	}
	for ; ; wait = t.o.Lifetime {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		r, err := ir.wait()
		var msg []byte
		if err == nil {
			msg, err = ReadFrame(r, t.o.ReadSize)
		}
		var fe *FrameError
		if errors.As(err, &fe) {
			t.o.FrameError(fe.Head, fe.Reason, tc.remote, tc.local, tc)
			tc.shutdownWrite()
			// Read on (and discard) until the peer closes or a short timeout: closing with unread bytes would
			// reset the connection, and the peer could lose the 400 before reading it.
			linger(c, r, t.o.ReadSize)
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				t.o.Log.Info(tc.proto.String()+" connection closed", "remote", tc.remote.String(), "err", err)
				t.o.StreamError()
			}
			return
		}
		if msg == nil { // CRLF keep-alive (RFC 5626 §4.4.1): answer a double CRLF ping with a pong
			_ = tc.Write([]byte("\r\n"))
		} else {
			t.o.Handle(msg, tc.remote, tc.proto, tc.local, tc)
		}
		ir.idle()
	}
}

// readerPool holds the read buffers of connections that are between messages.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamReadBuffer) }}

// idleReader is a connection's buffered reader that holds a buffer only while bytes are buffered: an idle
// connection waits for its next byte with a one-byte read, and takes a buffer from readerPool when it
// comes (an idle connection then costs no read buffer).
type idleReader struct {
	c   net.Conn
	one [1]byte
	has bool // one holds the byte wait read
	r   *bufio.Reader
}

// Read gives the byte wait read, then reads the connection.
func (ir *idleReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if ir.has {
		p[0], ir.has = ir.one[0], false
		return 1, nil
	}
	return ir.c.Read(p)
}

// wait blocks until the next message's first byte (or an error) and returns the reader to read it with.
func (ir *idleReader) wait() (*bufio.Reader, error) {
	if ir.r != nil {
		return ir.r, nil // bytes left from the last message
	}
	for {
		n, err := ir.c.Read(ir.one[:])
		if n == 1 {
			ir.has = true
			break
		}
		if err != nil {
			return nil, err
		}
	}
	ir.r = readerPool.Get().(*bufio.Reader)
	ir.r.Reset(ir)
	return ir.r, nil
}

// idle gives the buffer back when nothing is left in it.
func (ir *idleReader) idle() {
	if ir.r != nil && ir.r.Buffered() == 0 && !ir.has {
		ir.release()
	}
}

func (ir *idleReader) release() {
	if ir.r != nil {
		ir.r.Reset(nil)
		readerPool.Put(ir.r)
		ir.r = nil
	}
}

// streamReadBuffer is the read buffer of a TCP or TLS connection: most SIP messages fit it whole, longer
// header lines are read on in pieces (ReadFrame), and an idle connection holds only this much.
const streamReadBuffer = 2 << 10
