package dispatcher_test

import (
	"fmt"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// BenchmarkSelectDst: ds_select_dst over a set of 10 by algorithm, with and without the failover list
// (flags = 2 builds the list of the other destinations for ds_next_dst: one slice, records prebuilt).
func BenchmarkSelectDst(b *testing.B) {
	for _, flags := range []int{0, 2} {
		cfg := fmt.Sprintf("[modules.dispatcher]\nflags = %d\n", flags)
		for i := 1; i <= 10; i++ {
			cfg += fmt.Sprintf("[[modules.dispatcher.dst]]\nset = 1\nuri = \"sip:10.0.0.%d:5060\"\nattrs = \"weight=10;rweight=%d\"\n", i, i)
		}
		p := enginetest.Start(b, cfg, "function ksr_request_route() end")
		sel := p.Export(b, "dispatcher", "ds_select_dst").(func(*engine.Msg, int, int) int)
		m := enginetest.Msg(b, p, invite)
		for _, alg := range []int{0, 1, 4, 9, 11} {
			b.Run(fmt.Sprintf("flags=%d/alg=%d", flags, alg), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					m.DstURI = ""
					if sel(m, 1, alg) != 1 {
						b.Fatal("no destination")
					}
				}
			})
		}
	}
}
