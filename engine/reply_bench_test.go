package engine

import (
	"net/netip"
	"testing"
)

// BenchmarkBuildReply: the stateless reply of S1 (a SIPp REGISTER answered 404) built from the received
// bytes; with checkRaw and scan it is the engine's own share of a stateless reply's CPU.
func BenchmarkBuildReply(b *testing.B) {
	const reg = "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1234-1-0\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:s1u1@127.0.0.1:5060>;tag=1234s11\r\nTo: <sip:s1u1@127.0.0.1:5060>\r\n" +
		"Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:s1u1@127.0.0.1:5070>\r\nExpires: 3600\r\n" +
		"User-Agent: bench-s1\r\nContent-Length: 0\r\n\r\n"
	m := &Msg{Buf: []byte(reg), Src: netip.MustParseAddrPort("127.0.0.1:5070"), E: &Engine{cfg: &Config{}}}
	if err := m.scan(); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		dst = m.BuildReply(dst[:0], 404, "No registrar", nil, "")
	}
	if len(dst) == 0 {
		b.Fatal("empty reply")
	}
}
