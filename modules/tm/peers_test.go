package tm_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// Raw-socket peers for flows SIPp cannot express or assert precisely: several UASes whose sockets exist
// before the script that names them, so the proxy listens on a port picked beforehand.

type peers struct {
	p   *enginetest.Proxy
	uac *enginetest.Client
	uas []*enginetest.Client
}

// uasURI is the Request-URI that reaches UAS i.
func (pp *peers) uasURI(i int) string { return "sip:bob@" + pp.uas[i].Addr.String() }

// startPeers opens n UDP UASes, starts the proxy with config (no [core] listen: it is added) and the script
// script(peers) returns, and a UDP UAC.
func startPeers(t *testing.T, config string, n int, script func(pp *peers) string) *peers {
	t.Helper()
	port := enginetest.FreePort(t)
	proxy := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	pp := &peers{}
	for range n {
		pp.uas = append(pp.uas, enginetest.NewUDPClient(t, proxy))
	}
	listen := fmt.Sprintf("[core]\nlisten = [\"udp:127.0.0.1:%d\", \"tcp:127.0.0.1:%d\"]\n", port, port)
	pp.p = enginetest.Start(t, listen+config, script(pp))
	pp.uac = pp.p.UDPClient(t)
	return pp
}

func startLine(raw []byte) string {
	l, _, _ := strings.Cut(string(raw), "\r\n")
	return l
}

// header returns the values of a header (full name) in a raw message, in order.
func header(raw []byte, name string) []string {
	var out []string
	for _, l := range strings.Split(string(raw), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// recvRequest reads the next request a peer receives, skipping retransmissions of reqs already seen.
func recvRequest(t *testing.T, c *enginetest.Client, method string, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s expected at %s: %v", method, c.Addr, err)
		}
		if strings.HasPrefix(string(b), method+" ") {
			return b
		}
		t.Logf("%s skipped while waiting for %s: %s", c.Addr, method, startLine(b))
	}
}

// expectSilence fails when the peer receives anything within d.
func expectSilence(t *testing.T, c *enginetest.Client, d time.Duration) {
	t.Helper()
	if b, err := c.TryRecv(d); err == nil {
		t.Fatalf("%s received unexpectedly:\n%s", c.Addr, b)
	}
}

// recvFinal reads responses until a final one and returns it raw, with the provisional codes seen.
func recvFinal(t *testing.T, c *enginetest.Client, timeout time.Duration) ([]byte, []int) {
	t.Helper()
	var prov []int
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("final reply expected at the UAC (provisionals %v): %v", prov, err)
		}
		code := statusCode(b)
		if code == 0 {
			t.Fatalf("UAC got a request: %s", startLine(b))
		}
		if code >= 200 {
			return b, prov
		}
		prov = append(prov, code)
	}
}

func statusCode(raw []byte) int {
	l := startLine(raw)
	if !strings.HasPrefix(l, "SIP/2.0 ") || len(l) < 11 {
		return 0
	}
	n, _ := strconv.Atoi(l[8:11])
	return n
}

// answer makes UAS c reply status to request req; a negative final answer must be ACKed by the proxy.
func answer(t *testing.T, c *enginetest.Client, req []byte, status string) {
	t.Helper()
	c.Send(replyTo(string(req), status, "uas"+strings.ReplaceAll(c.Addr.String(), ":", "-")))
	if code, _ := strconv.Atoi(status[:3]); code >= 300 {
		ack := recvRequest(t, c, "ACK", 2*time.Second)
		if got, want := header(ack, "CSeq"), "1 ACK"; len(got) != 1 || got[0] != want {
			t.Fatalf("ACK CSeq %v, want %q", got, want)
		}
	}
}

const peerConfig = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.corex]\n[modules.tmx]\n"
