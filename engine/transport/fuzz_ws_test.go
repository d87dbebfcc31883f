package transport

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// clientFrame is a masked client frame (RFC 6455 §5.3).
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

// runWS feeds data to readWS as a client's byte stream and returns the messages handed on.
func runWS(tb testing.TB, data []byte) [][]byte {
	var got [][]byte
	tr := New(Options{ReadSize: 65535, MaxConns: 4, Lifetime: 2 * time.Second,
		Handle: func(b []byte, _ netip.AddrPort, _ Proto, _ *Listener, _ *Conn) {
			got = append(got, append([]byte(nil), b...))
		},
		WS: WSOptions{MaxFrame: 4096, MaxMessage: 8192, PingInterval: time.Second}})
	a, b := net.Pipe()
	tc := &Conn{proto: WS, rw: a, ready: make(chan struct{}), done: make(chan struct{}), tr: tr, writing: true} // no writer: frames queued stay queued
	go func() {
		_, _ = b.Write(data)
		b.Close()
	}()
	tr.readWS(tc)
	a.Close()
	return got
}

var sipMsg = []byte("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")

// TestWSFrames: whole and fragmented messages are handed on once, control frames are not, and a frame
// that breaks the rules ends the connection without a message.
func TestWSFrames(t *testing.T) {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	unmasked := append([]byte{0x81, byte(len(sipMsg))}, sipMsg...)
	for _, tc := range []struct {
		name string
		in   []byte
		want int
	}{
		{"one text frame", clientFrame(true, opText, sipMsg), 1},
		{"binary frame", clientFrame(true, opBinary, sipMsg), 1},
		{"fragmented with a ping between", cat(clientFrame(false, opText, sipMsg[:10]), clientFrame(true, opPing, []byte("hi")),
			clientFrame(true, opCont, sipMsg[10:])), 1},
		{"two messages", cat(clientFrame(true, opText, sipMsg), clientFrame(true, opText, sipMsg)), 2},
		{"unmasked", unmasked, 0},
		{"frame too big", clientFrame(true, opText, make([]byte, 5000)), 0},
		{"continuation first", clientFrame(true, opCont, sipMsg), 0},
		{"close ends reading", cat(clientFrame(true, opClose, []byte{3, 232}), clientFrame(true, opText, sipMsg)), 0},
		{"long ping", clientFrame(true, opPing, make([]byte, 126)), 0},
		{"message over max_message_size", cat(clientFrame(false, opText, make([]byte, 4000)), clientFrame(false, opCont, make([]byte, 4000)),
			clientFrame(true, opCont, make([]byte, 4000))), 0},
	} {
		if got := runWS(t, tc.in); len(got) != tc.want {
			t.Errorf("%s: %d messages, want %d", tc.name, len(got), tc.want)
		} else if tc.want > 0 && string(got[0]) != string(sipMsg) {
			t.Errorf("%s: got %q", tc.name, got[0])
		}
	}
}

// FuzzWSFrames: any byte stream after the upgrade is read without a crash or an unbounded allocation.
func FuzzWSFrames(f *testing.F) {
	f.Add(clientFrame(true, opText, sipMsg))
	f.Add(append(clientFrame(false, opText, sipMsg[:5]), clientFrame(true, opCont, sipMsg[5:])...))
	f.Add(clientFrame(true, opPing, []byte("x")))
	f.Add(clientFrame(true, opClose, nil))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range runWS(t, data) {
			if len(m) > 8192 {
				t.Fatalf("message of %d bytes passed max_message_size", len(m))
			}
		}
	})
}
