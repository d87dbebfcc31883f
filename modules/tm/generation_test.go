package tm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// genScript relays and names its failure route's reply after the script version.
func genScript(version string) string {
	return fmt.Sprintf(`
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_on_failure("busy")
	KSR.tm.t_relay()
end
function busy()
	KSR.tm.t_reply(480, "Busy in %s")
end`, version)
}

// ackFor is the UAC's ACK of a negative final reply to its INVITE (RFC 3261 §17.1.1.3).
func ackFor(invite string, final []byte) string {
	var b strings.Builder
	line, _, _ := strings.Cut(invite, "\r\n")
	b.WriteString("ACK " + strings.Fields(line)[1] + " SIP/2.0\r\n")
	for _, l := range strings.Split(invite, "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(k) {
		case "via", "from", "call-id", "max-forwards":
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("To: " + header(final, "To")[0] + "\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// TestReloadKeepsTransactionGeneration: a reload between an INVITE and its 486 does not change the script
// of that transaction: the old script's failure route answers; the old generation stays open (the gauge
// says 2) until the transaction ends, then closes; a new INVITE runs on the new script.
func TestReloadKeepsTransactionGeneration(t *testing.T) {
	cfg := "workers = 2\n" + strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\nwt_timer = 100\n", 1)
	pp := startPeers(t, cfg, 1, func(*peers) string { return genScript("old") })
	call := func(want string, reload func()) {
		t.Helper()
		inv := enginetest.CRLF(pp.uac.Request("INVITE", pp.uasURI(0)))
		pp.uac.Send(inv)
		req := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
		if reload != nil {
			reload()
		}
		answer(t, pp.uas[0], req, "486 Busy Here")
		final, _ := recvFinal(t, pp.uac, 2*time.Second)
		if got := startLine(final); got != "SIP/2.0 480 "+want {
			t.Fatalf("UAC got %q, want 480 %s", got, want)
		}
		pp.uac.Send(ackFor(inv, final))
	}
	live := func() int { return pp.p.E.LiveGenerations() }
	call("Busy in old", func() {
		pp.p.WriteFile(t, "script.lua", genScript("new"))
		if _, err := pp.p.Reload(); err != nil {
			t.Fatal(err)
		}
		// idle workers move to the new generation; the transaction keeps the old one open
		enginetest.Eventually(t, 3*time.Second, "2 live generations during the old transaction", func() bool { return live() == 2 })
	})
	enginetest.Eventually(t, 3*time.Second, "1 live generation after the old transaction ended", func() bool { return live() == 1 })
	call("Busy in new", nil)
}
