package enginetest_test

import (
	"net"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// BenchmarkStatelessForward measures KSR.forward to an IP address over loopback UDP (the path that must not
// pay for DNS or TCP): read, parse, route, Via, send; the UAS socket only reads.
func BenchmarkStatelessForward(b *testing.B) {
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer uas.Close()
	_ = uas.SetReadBuffer(4 << 20)
	p := enginetest.Start(b, "[core]\nworkers = 1\n", `function ksr_request_route() KSR.forward() end`)
	c := p.UDPClient(b)
	req := enginetest.CRLF(c.Request("MESSAGE", "sip:bob@"+uas.LocalAddr().String()))
	buf := make([]byte, 65535)
	const window = 16
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for i := 0; i < n; i++ {
			c.Send(req)
		}
		for i := 0; i < n; i++ {
			_ = uas.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, _, err := uas.ReadFromUDP(buf); err != nil {
				b.Fatal(err)
			}
		}
		sent += n
	}
}
