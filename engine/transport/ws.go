package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// WebSocket (RFC 6455) carrying SIP (RFC 7118). github.com/gobwas/ws (already in the module graph through
// sipgo) makes the HTTP upgrade and reads frame headers: it works on the connection itself (no
// net/http server, no goroutine of its own, pooled handshake buffers), so a WebSocket connection is a TCP
// connection with a framing step, written and read by the same two goroutines as TCP.

// WSOptions are the [websocket] table's values.
type WSOptions struct {
	Path           string        // the HTTP path the upgrade must ask for ("/")
	AllowedOrigins []string      // Origin values accepted ("" or empty list = any)
	PingInterval   time.Duration // a connection silent this long gets a ping
	MaxFrame       int           // the largest frame payload accepted
	MaxMessage     int           // the largest message (frames of one message together)
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// appendWSFrame appends one unmasked, final frame (a server's frames are not masked, RFC 6455 §5.1).
func appendWSFrame(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// errWSSubprotocol is an upgrade without the "sip" subprotocol (RFC 7118 §4.1 requires it).
var errWSSubprotocol = errors.New(`no "sip" in Sec-WebSocket-Protocol`)

// upgradeWS reads the client's HTTP upgrade request and answers 101 (path, Origin and the "sip"
// subprotocol checked) or an HTTP error.
func (t *Transport) upgradeWS(tc *Conn) error {
	o := t.o.WS
	var sip bool
	var origin string
	var reason error
	u := ws.Upgrader{
		ReadBufferSize:  2048,
		WriteBufferSize: 512,
		Protocol: func(p []byte) bool {
			if strings.EqualFold(string(p), "sip") {
				sip = true
				return true
			}
			return false
		},
		OnRequest: func(uri []byte) error {
			path, _, _ := strings.Cut(string(uri), "?")
			if want := o.Path; want != "" && path != want {
				reason = fmt.Errorf("path %q is not %q", path, want)
				return ws.RejectConnectionError(ws.RejectionStatus(404), ws.RejectionReason("not found"))
			}
			return nil
		},
		OnHeader: func(k, v []byte) error {
			if strings.EqualFold(string(k), "Origin") {
				origin = string(v)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !sip {
				reason = errWSSubprotocol
				return nil, ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("sip subprotocol required"))
			}
			if !originAllowed(o.AllowedOrigins, origin) {
				reason = fmt.Errorf("origin %q is not in allowed_origins", origin)
				return nil, ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("origin not allowed"))
			}
			return nil, nil
		},
	}
	_, err := u.Upgrade(tc.rw)
	if reason != nil {
		return reason
	}
	return err
}

func originAllowed(list []string, origin string) bool {
	if len(list) == 0 {
		return true
	}
	for _, o := range list {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// readWS reads WebSocket frames: every text or binary message is one SIP message (RFC 7118 §5.2); pings
// are answered, a close is echoed and ends the connection. A connection silent for PingInterval gets a
// ping; one silent for the connection lifetime is closed.
func (t *Transport) readWS(tc *Conn) {
	c := tc.rw
	ir := &idleReader{c: c}
	defer ir.release()
	o := t.o.WS
	ping := o.PingInterval
	if ping <= 0 || ping > t.o.Lifetime {
		ping = t.o.Lifetime
	}
	last := time.Now()
	var msg []byte
	var msgOp byte
	for ; ; ir.idle() {
		// Wait for the first byte of the next frame: a timeout here loses nothing, so it can ping and go on.
		_ = c.SetReadDeadline(time.Now().Add(ping))
		r, err := ir.wait()
		if err != nil {
			if isTimeout(err) && time.Since(last) < t.o.Lifetime {
				_ = tc.queuePkt(outPkt{b: appendWSFrame(nil, opPing, nil), framed: true})
				continue
			}
			t.wsClosed(tc, err)
			return
		}
		last = time.Now()
		_ = c.SetReadDeadline(last.Add(tcpWriteTimeout)) // the rest of a frame comes at once
		op, fin, payload, err := readWSFrame(r, o.MaxFrame)
		if err != nil {
			if t.wsFail(tc, err) {
				linger(c, r, t.o.ReadSize)
			}
			return
		}
		switch op {
		case opPing:
			_ = tc.queuePkt(outPkt{b: appendWSFrame(nil, opPong, payload), framed: true})
		case opPong:
		case opClose:
			_ = tc.queuePkt(outPkt{b: appendWSFrame(nil, opClose, closeCode(payload)), framed: true})
			tc.shutdownWrite()
			linger(c, r, t.o.ReadSize)
			return
		case opText, opBinary, opCont:
			var bad error
			switch {
			case op == opCont && msgOp == 0:
				bad = errors.New("continuation frame without a message")
			case op != opCont && msgOp != 0:
				bad = errors.New("new message inside a fragmented one")
			case len(msg)+len(payload) > o.MaxMessage:
				bad = fmt.Errorf("message larger than max_message_size %d", o.MaxMessage)
			}
			if bad != nil {
				t.wsFail(tc, bad)
				linger(c, r, t.o.ReadSize)
				return
			}
			if op != opCont {
				msgOp = op
			}
			if fin && msg == nil {
				// a whole message in one frame (the usual case): hand it on without copying
				msgOp = 0
				if len(payload) > 4 { // keep-alive CRLFs and noise, as UDP
					t.o.Handle(payload, tc.remote, tc.proto, tc.local, tc)
				}
				continue
			}
			msg = append(msg, payload...)
			if fin {
				msgOp = 0
				if len(msg) > 4 {
					t.o.Handle(msg, tc.remote, tc.proto, tc.local, tc)
				}
				msg = nil
			}
		default:
			t.wsFail(tc, fmt.Errorf("unknown opcode %#x", op))
			linger(c, r, t.o.ReadSize)
			return
		}
	}
}

func closeCode(p []byte) []byte {
	if len(p) >= 2 {
		return p[:2]
	}
	return nil
}

func (t *Transport) wsClosed(tc *Conn, err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.o.Log.Info(tc.proto.String()+" connection closed", "remote", tc.remote.String(), "err", err)
	}
}

// wsFail ends a connection whose framing broke: a close frame with 1002 (protocol error) or 1009 (too big);
// false when the stream just ended (nothing to answer).
func (t *Transport) wsFail(tc *Conn, err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isTimeout(err) {
		return false
	}
	code := uint16(1002)
	if errors.Is(err, errWSTooBig) || strings.Contains(err.Error(), "larger") {
		code = 1009
	}
	t.o.Log.Info(tc.proto.String()+" connection closed: bad frame", "remote", tc.remote.String(), "err", err)
	t.o.StreamError()
	_ = tc.queuePkt(outPkt{b: appendWSFrame(nil, opClose, binary.BigEndian.AppendUint16(nil, code)), framed: true})
	tc.shutdownWrite()
	return true
}

// linger reads on (and discards) until the peer closes or a short timeout, so that the writer sends what
// was queued last (a close frame) before the connection is closed: closing with unread bytes would reset
// it, and the peer could lose the close frame.
func linger(c net.Conn, r io.Reader, readSize int) {
	_ = c.SetReadDeadline(time.Now().Add(frameErrorLinger))
	_, _ = io.CopyN(io.Discard, r, int64(readSize)*4)
}

var errWSTooBig = errors.New("frame larger than max_frame_size")

// readWSFrame reads one client frame and unmasks it; fin is false when more frames of the message follow.
func readWSFrame(r *bufio.Reader, maxFrame int) (op byte, fin bool, payload []byte, err error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return 0, false, nil, err
	}
	if h.Rsv != 0 {
		return 0, false, nil, errors.New("reserved bits set (no extension was negotiated)")
	}
	if !h.Masked {
		return 0, false, nil, errors.New("unmasked client frame (RFC 6455 §5.1)")
	}
	op = byte(h.OpCode)
	if op >= opClose && (!h.Fin || h.Length > 125) {
		return 0, false, nil, errors.New("fragmented or long control frame")
	}
	if h.Length > int64(maxFrame) {
		return 0, false, nil, errWSTooBig
	}
	payload = make([]byte, int(h.Length))
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, false, nil, err
	}
	ws.Cipher(payload, h.Mask, 0)
	return op, h.Fin, payload, nil
}

// CloseWith ends the connection: a WebSocket gets a close frame with code and reason first (RFC 6455
// §5.5.1) and the peer's close ends it; other transports close at once.
func (c *Conn) CloseWith(code int, reason string) {
	if !c.proto.WebSocket() {
		c.close()
		return
	}
	if len(reason) > 123 {
		reason = reason[:123] // a control frame's payload is at most 125 bytes
	}
	body := append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	if c.queuePkt(outPkt{b: appendWSFrame(nil, opClose, body), framed: true}) != nil {
		c.close()
		return
	}
	c.shutdownWrite()
}
