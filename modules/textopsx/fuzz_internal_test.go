package textopsx

import (
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// FuzzTextopsx: no header spec, value, iterator name or buffer makes a function panic, and the outgoing
// message always builds. Run longer with: go test ./modules/textopsx -run XXX -fuzz FuzzTextopsx
func FuzzTextopsx(f *testing.F) {
	for _, s := range [][2]string{{"X-A", "v"}, {"X-A[2]", ""}, {"X-P[*].q", "1"}, {"X-P[-1].q", ""}, {"[", "]"}, {"X-A.", "x"}} {
		f.Add(s[0], s[1], "SIP/2.0 200 OK\r\nVia: x\r\n\r\n")
	}
	f.Fuzz(func(t *testing.T, spec, val, newbuf string) {
		buf := []byte("SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n" +
			"X-A: one, \"t,w\" two\r\nX-P: <sip:a@x>;q=0.5;foo, <sip:b@x> ; q = 1\r\nX-A:\r\nContent-Length: 7\r\n\r\nl1\nl2\r\n")
		m := &engine.Msg{Buf: buf}
		if err := rawsip.Scan(buf, &m.Raw); err != nil {
			t.Fatal(err)
		}
		for o := opAppend; o <= opAssign2; o++ {
			modifyHF(m, spec, val, o)
		}
		for o := opInclude; o <= opExists; o++ {
			incExc(m, spec, val, o)
		}
		hfStart(m, val)
		for i := 0; i < 8; i++ {
			hfNext(m, val)
			hfPrev(m, val)
			hfNext(m, val)
			hfAdd(m, val, spec, i%2 == 0)
			hfName(m, val)
		}
		blStart(m, val)
		for blNext(m, val) == 1 {
			blAdd(m, val, spec, true)
			blValue(m, val)
		}
		fnmatch(val, spec, "")
		keepHF(m, spec)
		changeStatus(m, len(val)*37, &spec)
		_ = m.Outgoing()
		msgSetBuffer(m, newbuf)
		_ = m.Outgoing()
	})
}
