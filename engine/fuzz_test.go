package engine

import (
	"net/netip"
	"slices"
	"strings"
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
					first := v[:rawsip.FirstValueEnd([]byte(v))]
					// the relay's parameter edits give the Via a stateless reply gets
					if got, want := applyEdits(first, viaEdits(v, src, forceRport)), viaWithReceived(first, src, forceRport); got != want {
						t.Fatalf("Via %q: relayed %q, replied %q", v, got, want)
					}
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

// applyEdits applies edits (offsets into s, insertions at one offset kept in order) to s.
func applyEdits(s string, edits []edit) string {
	sorted := slices.Clone(edits)
	slices.SortStableFunc(sorted, func(a, b edit) int { return int(a.off - b.off) })
	var b strings.Builder
	pos := 0
	for _, e := range sorted {
		b.WriteString(s[pos:e.off])
		b.WriteString(e.text)
		pos = max(pos, int(e.end))
	}
	b.WriteString(s[pos:])
	return b.String()
}

// TestViaReceivedEdits: the parameter edits of a relayed request's top Via give the value a stateless
// reply gets, for the cases that matter (rport empty or set, forced, received present, another host).
func TestViaReceivedEdits(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.7:5070")
	for _, v := range []string{
		"SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1",
		"SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1",
		"SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1;rport=1",
		"SIP/2.0/UDP host.example;branch=z9hG4bK1",
		"SIP/2.0/UDP 10.0.0.1:5060;received=10.9.9.9;branch=z9hG4bK1",
		"SIP/2.0/TCP [2001:db8::1]:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2",
	} {
		for _, force := range []bool{false, true} {
			first := v[:rawsip.FirstValueEnd([]byte(v))]
			if got, want := applyEdits(first, viaEdits(v, src, force)), viaWithReceived(first, src, force); got != want {
				t.Errorf("Via %q (force %v): relayed %q, replied %q", v, force, got, want)
			}
		}
	}
}

// viaEdits is appendViaReceivedEdits with its own text buffer.
func viaEdits(v string, src netip.AddrPort, force bool) []edit {
	e, _ := appendViaReceivedEdits(nil, nil, v, 0, src, force)
	return e
}
