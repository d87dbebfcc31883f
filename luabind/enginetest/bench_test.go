package enginetest_test

import (
	"os"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// BenchmarkStatelessReply measures the whole stateless path over loopback UDP: read, parse, Lua route,
// reply bytes, send. Allocations are process-wide, so allocs/op counts the proxy's work per request.
func BenchmarkStatelessReply(b *testing.B) {
	script, err := os.ReadFile("../../scripts/bench/S1.lua") // the S1 benchmark's own script
	if err != nil {
		b.Fatal(err)
	}
	p := enginetest.Start(b, "[core]\nworkers = 1\nserver_header = \"\"\n[modules.sl]\n", string(script))
	c := p.UDPClient(b)
	req := enginetest.CRLF(c.Request("REGISTER", "sip:127.0.0.1"))
	const window = 16
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for i := 0; i < n; i++ {
			c.Send(req)
		}
		for i := 0; i < n; i++ {
			c.RecvRaw(2 * time.Second)
		}
		sent += n
	}
}
