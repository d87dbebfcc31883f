package rawsip

import (
	"bytes"
	"testing"
)

// FuzzScan checks that Scan never panics and that every position it reports lies inside the buffer, in
// order, so callers can slice with them without further checks.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var m Msg
		if err := Scan(buf, &m); err != nil {
			return
		}
		if m.FirstLineEnd < 0 || m.FirstLineEnd > len(buf) || m.HdrsEnd > len(buf) || m.Body > len(buf) || m.HdrsEnd >= m.Body {
			t.Fatalf("bad positions: first line end %d, headers end %d, body %d, len %d", m.FirstLineEnd, m.HdrsEnd, m.Body, len(buf))
		}
		prev := m.FirstLineEnd
		for i, h := range m.Hdrs {
			if !(prev <= int(h.Start) && h.Start <= h.NameEnd && h.NameEnd < h.VStart && h.VStart <= h.VEnd && h.VEnd <= h.End && int(h.End) <= m.HdrsEnd) {
				t.Fatalf("header %d: bad positions %+v (prev %d, headers end %d)", i, h, prev, m.HdrsEnd)
			}
			prev = int(h.End)
			v := h.Value(buf)
			_ = h.Name(buf)
			_ = h.Is(buf, "via")
			_ = FirstValueEnd(v)
			if semi := bytes.IndexByte(v, ';'); semi >= 0 {
				for _, p := range []string{"branch", "rport", "received", "tag"} {
					if _, s, e, ok := Param(string(v[semi:]), p); ok && (s < 0 || e > len(v)-semi || s > e) {
						t.Fatalf("Param %q: span %d..%d outside %q", p, s, e, v[semi:])
					}
				}
			}
		}
		if s, e, ok := RequestURI(buf, &m); ok && (s < 0 || e > m.FirstLineEnd || s > e) {
			t.Fatalf("RequestURI span %d..%d, first line ends at %d", s, e, m.FirstLineEnd)
		}
	})
}

var scanSeeds = []string{
	"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nf: <sip:a@b>;tag=1\r\nt: <sip:bob@example.com>\r\ni: abc\r\nCSeq: 1 INVITE\r\nl: 3\r\n\r\nabc",
	"REGISTER sip:x SIP/2.0\nVia: SIP/2.0/TCP h\n  ;branch=z9hG4bK2\nContent-Length: 0\n\n",
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b;received=1.2.3.4\r\n\r\n",
	"OPTIONS sip:x SIP/2.0\r\nContact: \"a,b\" <sip:a@b;x=1,2>, <sip:c>\r\n\r\n",
	"\r\n\r\n",
	"X\r\nnocolon\r\n\r\n",
}
