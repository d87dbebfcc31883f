package enginetest_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// The branch of a statelessly forwarded request identifies the transaction (RFC 3261 §16.11): the same for a
// retransmission and for the CANCEL of an INVITE, different for another client that reuses a branch.
func TestStatelessBranch(t *testing.T) {
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Close()
	p := enginetest.Start(t, "", `function ksr_request_route() KSR.forward() end`)
	ruri := fmt.Sprintf("sip:bob@%s", uas.LocalAddr())
	proxyBranch := func(c *enginetest.Client, method, branch string) string {
		t.Helper()
		req := fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <%s>\r\n"+
			"Call-ID: branch-test\r\nCSeq: 7 %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			method, ruri, c.Addr, branch, ruri, method)
		c.Send(req)
		buf := make([]byte, 4096)
		_ = uas.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := uas.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%s not forwarded: %v", method, err)
		}
		for _, l := range strings.Split(string(buf[:n]), "\r\n") {
			if strings.HasPrefix(l, "Via: ") && strings.Contains(l, p.UDP.String()) {
				_, b, _ := strings.Cut(l, ";branch=")
				return b
			}
		}
		t.Fatalf("no proxy Via in %q", buf[:n])
		return ""
	}
	c1, c2 := p.UDPClient(t), p.UDPClient(t)
	invite := proxyBranch(c1, "INVITE", "z9hG4bK-same")
	if !strings.HasPrefix(invite, "z9hG4bK") {
		t.Fatalf("branch %q lacks the magic cookie", invite)
	}
	if again := proxyBranch(c1, "INVITE", "z9hG4bK-same"); again != invite {
		t.Errorf("retransmission: %q, first: %q", again, invite)
	}
	if cancel := proxyBranch(c1, "CANCEL", "z9hG4bK-same"); cancel != invite {
		t.Errorf("CANCEL: %q, INVITE: %q", cancel, invite)
	}
	if other := proxyBranch(c2, "INVITE", "z9hG4bK-same"); other == invite {
		t.Errorf("another client with the same branch got the same proxy branch %q", other)
	}
}
