package tm_test

import (
	"strings"
	"testing"
	"time"
)

// TestTCPInUDPOut: a call from a TCP caller to a UDP callee gets a double Record-Route (the UDP socket
// first, toward the callee, then the TCP one); the BYE from the callee follows it back to the caller over
// the caller's own TCP connection, and a BYE from the caller goes out over UDP, both shedding our two
// Route entries.
func TestTCPInUDPOut(t *testing.T) {
	pp := startPeers(t, peerConfig+"[modules.siputils]\n", 1, func(*peers) string { return rrScript })
	uac := pp.p.TCPClient(t)
	udp, tcp := pp.p.UDP.String(), pp.p.TCP.String()
	inv := strings.Replace(uac.Request("INVITE", pp.uasURI(0), "Contact: <sip:alice@"+uac.Addr.String()+";transport=tcp>"),
		"tag=", "tag=caller", 1)
	uac.Send(inv)
	got := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	wantRR := []string{
		"<sip:" + udp + ";r2=on;lr;ftag=caller" + tagTail(inv) + ";foo=bar>",
		"<sip:" + tcp + ";transport=tcp;r2=on;lr;ftag=caller" + tagTail(inv) + ";foo=bar>",
	}
	if rr := header(got, "Record-Route"); strings.Join(rr, "|") != strings.Join(wantRR, "|") {
		t.Fatalf("Record-Route\n got %v\nwant %v", rr, wantRR)
	}
	if v := header(got, "Via"); len(v) != 2 || !strings.HasPrefix(v[0], "SIP/2.0/UDP "+udp) || !strings.HasPrefix(v[1], "SIP/2.0/TCP") {
		t.Fatalf("Via %v", v)
	}
	pp.uas[0].Send(replyTo(string(got), "200 OK", "callee"))
	ok := uac.RecvRaw(2 * time.Second)
	for statusCode(ok) < 200 {
		ok = uac.RecvRaw(2 * time.Second)
	}
	if statusCode(ok) != 200 || strings.Join(header(ok, "Record-Route"), "|") != strings.Join(wantRR, "|") {
		t.Fatalf("UAC got %s with Record-Route %v", startLine(ok), header(ok, "Record-Route"))
	}
	ftag := "caller" + tagTail(inv)

	t.Run("BYE from the callee, UDP to TCP", func(t *testing.T) {
		bye := inDialog(pp.uas[0], "BYE", "sip:alice@"+uac.Addr.String()+";transport=tcp", "callee", ftag, wantRR...)
		pp.uas[0].Send(bye)
		in := recvRequest(t, uac, "BYE", 2*time.Second)
		if got, want := startLine(in), "BYE sip:alice@"+uac.Addr.String()+";transport=tcp SIP/2.0"; got != want {
			t.Errorf("request line %q, want %q", got, want)
		}
		if r := header(in, "Route"); len(r) != 0 {
			t.Errorf("Route left: %v", r)
		}
		if v := header(in, "Via"); len(v) != 2 || !strings.HasPrefix(v[0], "SIP/2.0/TCP "+tcp) {
			t.Errorf("Via %v", v)
		}
		uac.Send(inDialogReply(in))
		if r := pp.uas[0].RecvRaw(2 * time.Second); statusCode(r) != 200 {
			t.Errorf("callee got %s, want 200 to its BYE", startLine(r))
		}
	})
	t.Run("BYE from the caller, TCP to UDP", func(t *testing.T) {
		uac.Send(inDialog(uac, "BYE", pp.uasURI(0), ftag, "callee", wantRR[1], wantRR[0]))
		in := recvRequest(t, pp.uas[0], "BYE", 2*time.Second)
		if r := header(in, "Route"); len(r) != 0 {
			t.Errorf("Route left: %v", r)
		}
		if v := header(in, "Via"); len(v) != 2 || !strings.HasPrefix(v[0], "SIP/2.0/UDP "+udp) {
			t.Errorf("Via %v", v)
		}
		pp.uas[0].Send(inDialogReply(in))
		if r := uac.RecvRaw(2 * time.Second); statusCode(r) != 200 {
			t.Errorf("caller got %s, want 200 to its BYE", startLine(r))
		}
	})
}

// tagTail is what Request put after our "caller" prefix in the From tag.
func tagTail(req string) string {
	from := header([]byte(req), "From")[0]
	_, tag, _ := strings.Cut(from, "tag=caller")
	return tag
}

// inDialogReply is a 200 to an in-dialog request (its To already has a tag).
func inDialogReply(req []byte) string {
	return strings.Replace(replyTo(string(req), "200 OK", ""), ";tag=\r\n", "\r\n", 1)
}
