package enginetest_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// optionsUAC sends one OPTIONS per call and expects a 200 to it.
const optionsUAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send><![CDATA[
OPTIONS sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`

// StartSIPp runs a real SIPp against a UAS: Wait is nil when every call got its 200, an error (and the
// error log has the unexpected reply) when the UAS answers otherwise; the injection file feeds [field0].
func TestStartSIPp(t *testing.T) {
	scenario := filepath.Join(t.TempDir(), "options.xml")
	if err := os.WriteFile(scenario, []byte(optionsUAC), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code int
		ok   bool
	}{{"answered", 200, true}, {"refused", 404, false}} {
		t.Run(tc.name, func(t *testing.T) {
			uas := enginetest.StartUAS(t, false, func(string) int { return tc.code })
			inf := enginetest.SIPpUsers(t, 3)
			s := enginetest.StartSIPp(t, "uac", scenario, uas.Addr.String(), "-m", "3", "-inf", inf, "-recv_timeout", "2000")
			err := s.Wait(20 * time.Second)
			if tc.ok != (err == nil) {
				t.Fatalf("Wait: %v, want ok=%v\n%s", err, tc.ok, enginetest.Tail(s.Output(), 2000))
			}
			if !tc.ok && !strings.Contains(string(s.ErrorLog()), "404") {
				t.Fatalf("error log has no 404:\n%s", s.ErrorLog())
			}
			if tc.ok {
				for i := range 3 {
					if r := uas.Next(t, time.Second).Raw; !strings.HasPrefix(r, "OPTIONS sip:user"+string(rune('0'+i))+"@") {
						t.Fatalf("request %d: %.60q, want OPTIONS to user%d", i, r, i)
					}
				}
			}
		})
	}
}

func TestSIPpInjection(t *testing.T) {
	b, err := os.ReadFile(enginetest.SIPpInjection(t, "bob", "carol;x"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "SEQUENTIAL\nbob;\ncarol;x;\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// RecvFinal skips provisional replies and requests and returns the first final reply.
func TestRecvFinal(t *testing.T) {
	c := enginetest.NewUDPClient(t, netip.MustParseAddrPort("127.0.0.1:9")) // a peer it never sends to
	peer, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for _, m := range []string{"SIP/2.0 100 Trying\r\n\r\n", "BYE sip:x SIP/2.0\r\n\r\n", "SIP/2.0 180 Ringing\r\n\r\n", "SIP/2.0 486 Busy Here\r\n\r\n"} {
		if _, err := peer.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(c.RecvFinal(2 * time.Second)); !strings.HasPrefix(got, "SIP/2.0 486 ") {
		t.Fatalf("RecvFinal: %q", got)
	}
}
