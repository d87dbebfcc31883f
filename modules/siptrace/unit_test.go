package siptrace

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(s *Siptrace)
		want string
	}{
		{"defaults", func(*Siptrace) {}, ""},
		{"tcp collector", func(s *Siptrace) { s.DuplicateURI = "sip:127.0.0.1:9061;transport=tcp" }, ""},
		{"hostname", func(s *Siptrace) { s.DuplicateURI = "sip:homer.example.com:9060" }, "IP address"},
		{"hep v2", func(s *Siptrace) { s.HepVersion = 2 }, "hep_version"},
		{"trace_mode", func(s *Siptrace) { s.TraceMode = 2 }, "trace_mode"},
		{"queue", func(s *Siptrace) { s.Queue = 0 }, "queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			tc.set(s)
			err := s.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCallID(t *testing.T) {
	for in, want := range map[string]string{
		"INVITE sip:a SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n\r\n":     "abc@h",
		"SIP/2.0 200 OK\r\ni:  def \r\n\r\nCall-ID: body\r\n":          "def",
		"BYE sip:a SIP/2.0\r\nFrom: x\r\n\r\nCall-ID: in-the-body\r\n": "",
		"": "",
	} {
		if got := callID([]byte(in)); got != want {
			t.Errorf("callID(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkEncode: one HEPv3 packet of an INVITE (what trace_mode 1 costs per message).
func BenchmarkEncode(b *testing.B) {
	msg := []byte(strings.Repeat("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080\r\n", 10))
	src, dst := netip.MustParseAddrPort("127.0.0.1:5080"), netip.MustParseAddrPort("127.0.0.1:5060")
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		encode(1, "", engine.UDP, src, dst, now, msg, "abc@example.com")
	}
}
