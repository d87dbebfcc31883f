package tm_test

import (
	"bufio"
	"flag"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenScript = `
function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then KSR.rr.record_route() end
	KSR.tm.t_relay()
end
`

// rawInvite is a fixed INVITE from uac to ruri (LF line ends; the client turns them into CRLF).
func rawInvite(uac, ruri, branch string) string {
	return "INVITE " + ruri + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + uac + ";rport;branch=" + branch + "\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:alice@example.com>;tag=a1\n" +
		"To: <sip:bob@example.com>\n" +
		"Call-ID: golden-1@test\n" +
		"CSeq: 1 INVITE\n" +
		"Contact: <sip:alice@" + uac + ">\n" +
		"Content-Length: 0\n\n"
}

var (
	tmBranch = regexp.MustCompile(`z9hG4bK[0-9a-f]{8}[0-9a-z]+\.[0-9]+`)
	rport    = regexp.MustCompile(`rport=[0-9]+`)
)

// normalize replaces the ports and generated branches of a message so it can be compared with a file.
func normalize(raw []byte, names map[string]string) string {
	s := string(raw)
	for addr, name := range names {
		s = strings.ReplaceAll(s, addr, name)
	}
	s = rport.ReplaceAllString(s, "rport=PORT")
	return tmBranch.ReplaceAllString(s, "z9hG4bK<tm>")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	enginetest.Golden(t, filepath.Join("testdata", "golden", name), got, *update)
}

// TestGoldenUDP checks the relayed INVITE (Record-Route, Via, Max-Forwards), the 180 relayed back, and
// the in-dialog BYE loose-routed to the callee; and that a retransmitted INVITE reaches the UAS once.
func TestGoldenUDP(t *testing.T) {
	p := enginetest.Start(t, tmConfig, goldenScript)
	uac := p.UDPClient(t)
	uas := enginetest.NewUDPClient(t, p.UDP)
	names := map[string]string{p.UDP.String(): "PROXY_UDP", uac.Addr.String(): "UAC", uas.Addr.String(): "UAS"}

	inv := rawInvite(uac.Addr.String(), "sip:bob@"+uas.Addr.String(), "z9hG4bKgolden1")
	uac.Send(inv)
	if r := uac.RecvResponse(2 * time.Second); r.StatusCode != 100 {
		t.Fatalf("expected 100 Trying, got %d", r.StatusCode)
	}
	got := uas.RecvRaw(2 * time.Second)
	golden(t, "invite-udp.txt", normalize(got, names))

	// the UAS rings: the proxy relays the 180 without its own Via
	ring := replyTo(string(got), "180 Ringing", "b1")
	uas.Send(ring)
	golden(t, "180-to-uac.txt", normalize(uac.RecvRaw(2*time.Second), names))

	// a retransmitted INVITE gets the last reply again and does not reach the UAS
	uac.Send(inv)
	if r := uac.RecvResponse(2 * time.Second); r.StatusCode != 180 {
		t.Fatalf("retransmission: expected the 180 again, got %d", r.StatusCode)
	}
	if b, err := uas.TryRecv(700 * time.Millisecond); err == nil {
		t.Fatalf("UAS got the INVITE twice:\n%s", b)
	}

	uas.Send(replyTo(string(got), "200 OK", "b1"))
	if r := uac.RecvResponse(2 * time.Second); r.StatusCode != 200 {
		t.Fatalf("expected 200, got %d", r.StatusCode)
	}
	// BYE from the caller with the route set the 200 gave
	bye := "BYE sip:bob@" + uas.Addr.String() + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + uac.Addr.String() + ";rport;branch=z9hG4bKgoldenbye\n" +
		"Route: <sip:" + p.UDP.String() + ";lr;ftag=a1>\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:alice@example.com>;tag=a1\n" +
		"To: <sip:bob@example.com>;tag=b1\n" +
		"Call-ID: golden-1@test\n" +
		"CSeq: 2 BYE\n" +
		"Content-Length: 0\n\n"
	uac.Send(bye)
	golden(t, "bye-udp.txt", normalize(uas.RecvRaw(2*time.Second), names))
}

// replyTo builds a reply from a UAS to a received request, echoing Via, Record-Route, From, To (with tag),
// Call-ID and CSeq.
func replyTo(req, status, tag string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, l := range strings.Split(req, "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "record-route", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=" + tag + "\r\n")
		}
	}
	b.WriteString("Contact: <sip:bob@127.0.0.1>\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// TestGoldenUDPToTCP checks the INVITE relayed from UDP to TCP: Via says TCP, double Record-Route with r2.
func TestGoldenUDPToTCP(t *testing.T) {
	p := enginetest.Start(t, tmConfig, goldenScript)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	uac := p.UDPClient(t)
	names := map[string]string{p.UDP.String(): "PROXY_UDP", p.TCP.String(): "PROXY_TCP", uac.Addr.String(): "UAC",
		ln.Addr().String(): "UAS"}
	uac.Send(rawInvite(uac.Addr.String(), "sip:bob@"+ln.Addr().String()+";transport=tcp", "z9hG4bKgolden2"))
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	var msg strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, msg.String())
		}
		msg.WriteString(l)
		if l == "\r\n" {
			break
		}
	}
	// the proxy's connection comes from an ephemeral port: name it
	got := strings.ReplaceAll(msg.String(), c.RemoteAddr().String(), "PROXY_TCP_CONN")
	golden(t, "invite-udp-to-tcp.txt", normalize([]byte(got), names))
}
