package transport

import (
	"bufio"
	"bytes"
	"testing"
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
