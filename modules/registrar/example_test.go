package registrar_test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestExampleScript runs scripts/examples/registrar.lua (the Kamailio-style registrar example): a UA
// registers, a call to it reaches its contact with the Request-URI rewritten, an unknown user gets 404.
func TestExampleScript(t *testing.T) {
	script, err := os.ReadFile("../../scripts/examples/registrar.lua")
	if err != nil {
		t.Fatal(err)
	}
	n := startNetScript(t, "[modules.tmx]\n[modules.rr]\n[modules.maxfwd]\n[modules.siputils]\n[modules.corex]\n", string(script), 1)
	proxy := n.p.UDP.String()
	reg := strings.NewReplacer("REGISTER sip:example.com", "REGISTER sip:"+proxy, "@example.com", "@"+proxy)
	got := n.uac.registerRaw(t, reg, "alice", 1, "Contact: <"+contactOf(n.peer[0], "alice")+">")
	if status(got) != "200 OK" || header(got, "Contact") != "<"+contactOf(n.peer[0], "alice")+">;expires=3600" {
		t.Fatalf("REGISTER:\n%s", got)
	}
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:alice@"+proxy))
	r := recvReq(t, n.peer[0], "INVITE")
	if reqURI(r) != contactOf(n.peer[0], "alice") || header(r, "Record-Route") == "" {
		t.Fatalf("INVITE at the UA:\n%s", r)
	}
	replyTo(t, n.peer[0], r, "486 Busy Here")
	if got := status(string(n.uac.c.RecvFinal(3 * time.Second))); got != "486 Busy Here" {
		t.Fatalf("caller got %q", got)
	}
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:nobody@"+proxy))
	if got := status(string(n.uac.c.RecvFinal(3 * time.Second))); got != "404 Not Found" {
		t.Fatalf("unknown user: %q", got)
	}
}
