package engine

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine/rawsip"
)

// fuzzEngine is an engine that parses and builds messages but never listens or routes.
func fuzzEngine() *Engine {
	return &Engine{cfg: &Config{Core: DefaultCore()}, parser: sip.NewParser(), tagPrefix: "fuzz"}
}

// FuzzMessagePath feeds arbitrary bytes through what the message path does with a received message before
// and after the script: scanning and parsing, the 400/stateless reply, the relayed copy with edits, the
// forward branch and the Via helpers. None of it may panic.
func FuzzMessagePath(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s), true)
	}
	e := fuzzEngine()
	src := netip.MustParseAddrPort("192.0.2.1:5070")
	f.Fuzz(func(t *testing.T, buf []byte, forceRport bool) {
		// what malformed() does: a reply from the raw positions alone when sipgo cannot parse
		raw := &Msg{Buf: buf, Src: src, Proto: UDP, E: e, ForceRport: forceRport}
		if rawsip.Scan(buf, &raw.Raw) == nil {
			_ = raw.BuildReply(nil, 400, "Bad Request", nil, "")
			_, _ = viaReplyPort(raw)
			raw.RemoveHeader("via")
			raw.AppendHeader("X-A: 1")
			raw.InsertHeader("X-B: 2")
			_ = raw.Outgoing()
			if cl, ok := raw.contentLengthEdit(); ok {
				_ = raw.appendOutgoing(nil, cl)
			}
			for _, h := range raw.Raw.Hdrs {
				if h.Is(buf, "via") {
					v := string(h.Value(buf))
					_ = viaWithReceived(v, src, forceRport)
					first := v[:rawsip.FirstValueEnd([]byte(v))]
					_, _ = ParseVia(first)
					_, _ = viaTarget(first)
				}
			}
		}
		m, err := e.NewMsg(buf, src, UDP)
		if err != nil {
			return
		}
		m.ForceRport = forceRport
		_ = m.Method()
		_ = m.RURI()
		_, _ = m.ParsedRURI()
		_ = m.Body()
		if m.IsRequest() {
			_ = m.BuildReply(nil, 404, "Not Found", []byte("x"), "text/plain")
			_ = m.statelessBranch()
			m.NewURI = "sip:rewritten@192.0.2.9"
			if s, en, ok := rawsip.RequestURI(m.Buf, &m.Raw); ok {
				m.AddEdit(s, en, m.NewURI)
			}
		}
		m.RemoveHeader("via")
		_ = m.Outgoing()
	})
}

var messageSeeds = []string{
	"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
	"INVITE sip:bob@[::1]:5060 SIP/2.0\r\nv: SIP/2.0/TCP [::1]:5070;branch=z9hG4bK2, SIP/2.0/UDP 10.0.0.1\r\nf: \"A, B\" <sip:a@x;p=1>;tag=2\r\nt: <sip:bob@x>\r\ni: c2\r\nCSeq: 2 INVITE\r\nl: 4\r\n\r\nbody",
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsl1\r\nVia: SIP/2.0/UDP 10.0.0.2:5080;received=10.0.0.3;rport=5090\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c3\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	"OPTIONS sip:x SIP/2.0\nVia: SIP/2.0/UDP h\n ;rport\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>\nCall-ID: c4\nCSeq: 1 OPTIONS\n\n",
	"ACK sip:x SIP/2.0\r\nVia: garbage\r\n\r\n",
}
