package main

import (
	"strings"
	"testing"
)

// The relay must do to the bytes what a proxy on the call's path does, or SIPp's calls fail through it.
func TestRequestAndReply(t *testing.T) {
	me := []byte("127.0.0.1:5060")
	via := []byte("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlr")
	rr := []byte("Record-Route: <sip:127.0.0.1:5060;lr>\r\n")
	inv := "INVITE sip:bob@127.0.0.1:5072 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\nCall-ID: c\r\nContent-Length: 4\r\n\r\nbody"
	out, to, ok := request(nil, []byte(inv), me, via, rr)
	if !ok || to.String() != "127.0.0.1:5072" {
		t.Fatalf("INVITE: ok %v to %v", ok, to)
	}
	s := string(out)
	if !strings.HasPrefix(s, "INVITE sip:bob@127.0.0.1:5072 SIP/2.0\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlr") ||
		!strings.Contains(s, "\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n") || !strings.HasSuffix(s, "\r\n\r\nbody") {
		t.Errorf("relayed INVITE:\n%s", s)
	}
	bye := "BYE sip:callee@127.0.0.1:5072 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK2\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nContent-Length: 0\r\n\r\n"
	out, _, ok = request(nil, []byte(bye), me, via, rr)
	if !ok || strings.Contains(string(out), "Route:") {
		t.Errorf("BYE keeps our Route or was refused (%v):\n%s", ok, out)
	}
	for _, vias := range []string{
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlrab, SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlrab\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n",
	} {
		res := "SIP/2.0 200 OK\r\n" + vias + "Call-ID: c\r\nContent-Length: 0\r\n\r\n"
		out, to, ok := reply(nil, []byte(res))
		want := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
		if !ok || to.String() != "127.0.0.1:5071" || string(out) != want {
			t.Errorf("reply with %q: ok %v to %v\n%s", vias, ok, to, out)
		}
	}
}
