package transport

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine/rawsip"
)

var frameSeeds = []string{
	"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody",
	"SIP/2.0 200 OK\r\nl: 0\r\n\r\n",
	"\r\n\r\n",
}

// FuzzReadFrame feeds arbitrary streams to the TCP framer: it must return frames no larger than the limit,
// or an error, and never panic.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s + s))
	}
	f.Add([]byte("\r\n\r\nOPTIONS sip:x SIP/2.0\r\nl: 99999999\r\n\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(stream), 16<<10)
		for range 64 {
			msg, err := ReadFrame(r, 4096)
			if err != nil {
				return
			}
			if len(msg) > 4096 {
				t.Fatalf("frame of %d bytes over the 4096 limit", len(msg))
			}
		}
	})
}

// FuzzFrameAgreesWithParser is the differential check behind the framing rules: every frame ReadFrame
// returns, rawsip.Scan reads as one message whose headers end where the framer's do and whose every
// Content-Length (full or compact, as the engine reads it) is exactly the body the framer cut. So no byte
// sequence is one message to the framer and another to the parser.
func FuzzFrameAgreesWithParser(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s + s))
	}
	for _, tt := range frameTests {
		f.Add([]byte(tt.stream))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(stream), 16<<10)
		for range 64 {
			msg, err := ReadFrame(r, 8192)
			if err != nil {
				return
			}
			if msg == nil {
				continue
			}
			var raw rawsip.Msg
			if err := rawsip.Scan(msg, &raw); err != nil {
				t.Fatalf("frame %q: the parser cannot read it: %v", msg, err)
			}
			body := len(msg) - raw.Body
			for _, h := range raw.Hdrs {
				name := h.Name(msg)
				if !(len(name) == 1 && name[0]|0x20 == 'l' || bytes.EqualFold(name, []byte("content-length"))) {
					continue
				}
				if n, err := strconv.Atoi(string(h.Value(msg))); err != nil || n != body || h.Value(msg)[0] == '+' {
					t.Fatalf("frame %q: body %d bytes, but the parser reads %s %q", msg, body, name, h.Value(msg))
				}
			}
		}
	})
}

var frameTests = []struct {
	name, stream string
	bodies       []string // the bodies of the frames read, in order
	reason       string   // then this FrameError ("" none)
}{
	{"two messages", "OPTIONS sip:x SIP/2.0\r\nl: 2\r\n\r\nabOPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\n\r\nc", []string{"ab", "c"}, ""},
	{"bare LF line ends", "OPTIONS sip:x SIP/2.0\nContent-Length: 2\n\nab", []string{"ab"}, ""},
	{"mixed line ends", "OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\n\r\nab", []string{"ab"}, ""},
	{"no Content-Length", "OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n", []string{""}, ""},
	{"same value twice", "OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\nl: 02\r\n\r\nab", []string{"ab"}, ""},
	{"Content-Length and l: differ", "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\nl: 30\r\n\r\nOPTIONS sip:y SIP/2.0\r\n\r\n", nil, "Content-Length mismatch"},
	{"two Content-Length differ", "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", nil, "Duplicate Content-Length header"},
	{"folded Content-Length value", "OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n 5\r\n\r\nhello", []string{"hello"}, ""},
	{"continuation line looking like l:", "OPTIONS sip:x SIP/2.0\r\nSubject: a\r\n l: 5\r\n\r\nhello", []string{""}, ""},
	{"plus sign", "OPTIONS sip:x SIP/2.0\r\nContent-Length: +5\r\n\r\nhello", nil, "Bad Content-Length"},
	{"negative", "OPTIONS sip:x SIP/2.0\r\nContent-Length: -5\r\n\r\nhello", nil, "Bad Content-Length"},
	{"empty value", "OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n\r\n", nil, "Bad Content-Length"},
	{"two numbers", "OPTIONS sip:x SIP/2.0\r\nContent-Length: 1 5\r\n\r\nhello", nil, "Bad Content-Length"},
	{"header without colon", "OPTIONS sip:x SIP/2.0\r\nContent-Length 5\r\n\r\nhello", nil, "Bad header"},
	{"name with space inside", "OPTIONS sip:x SIP/2.0\r\nContent -Length: 5\r\n\r\n", []string{""}, ""},
}

// TestReadFrame: how streams are cut, and which are refused as ambiguous (FuzzFrameAgreesWithParser checks
// the rule on any input; this table pins the cases down).
func TestReadFrame(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.stream), 16<<10)
			for _, want := range tt.bodies {
				msg, err := ReadFrame(r, 4096)
				if err != nil {
					t.Fatalf("ReadFrame: %v, want a frame with body %q", err, want)
				}
				var raw rawsip.Msg
				if err := rawsip.Scan(msg, &raw); err != nil {
					t.Fatal(err)
				}
				if got := string(msg[raw.Body:]); got != want {
					t.Fatalf("body %q, want %q", got, want)
				}
			}
			_, err := ReadFrame(r, 4096)
			var fe *FrameError
			switch {
			case tt.reason == "" && errors.As(err, &fe):
				t.Fatalf("unexpected %v", err)
			case tt.reason != "" && (!errors.As(err, &fe) || fe.Reason != tt.reason):
				t.Fatalf("got %v, want FrameError %q", err, tt.reason)
			case tt.reason != "" && !bytes.HasSuffix(fe.Head, []byte("\n\n")) && !bytes.HasSuffix(fe.Head, []byte("\r\n\r\n")):
				t.Fatalf("FrameError.Head %q is not the headers", fe.Head)
			}
		})
	}
}

// BenchmarkReadFrame: framing a TCP message allocates only the message itself.
func BenchmarkReadFrame(b *testing.B) {
	msg := []byte(frameSeeds[0])
	rd := bytes.NewReader(msg)
	r := bufio.NewReaderSize(rd, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(msg)
		r.Reset(rd)
		if _, err := ReadFrame(r, 4096); err != nil {
			b.Fatal(err)
		}
	}
}
