package sl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// headerValues returns the values of a header in a raw message, in order.
func headerValues(raw, name string) []string {
	var out []string
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// TestInDialogToTagKept: a request whose To already has a tag (in-dialog) is answered with exactly that To
// header; a tag of the proxy's own must not be added or replace it (RFC 3261 §8.2.6.2).
func TestInDialogToTagKept(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route() KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist") end`)
	c := p.UDPClient(t)
	req := strings.Replace(c.Request("BYE", "sip:bob@127.0.0.1"), "To: <sip:bob@127.0.0.1>",
		"To: <sip:bob@127.0.0.1>;tag=callee-7a1", 1)
	c.Send(req)
	got := string(c.RecvRaw(2 * time.Second))
	if to := headerValues(got, "To"); len(to) != 1 || to[0] != "<sip:bob@127.0.0.1>;tag=callee-7a1" {
		t.Fatalf("To of the reply: %q, want the request's exactly\n%s", to, got)
	}
	// out of dialog: the proxy adds a tag of its own
	c.Send(c.Request("OPTIONS", "sip:bob@127.0.0.1"))
	got = string(c.RecvRaw(2 * time.Second))
	if to := headerValues(got, "To"); len(to) != 1 || !strings.Contains(to[0], ";tag=") {
		t.Fatalf("To of an out-of-dialog reply has no tag: %q", to)
	}
}

// TestRecordRouteInReplies: Record-Route of an INVITE is copied, in order, into the 18x and 2xx a proxy
// sends statelessly (they may establish a dialog), and not into a 100 or a 4xx (RFC 3261 §12.1.1).
func TestRecordRouteInReplies(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	KSR.sl.sl_send_reply(tonumber(KSR.hdr.get("X-Code")), "Test")
end`)
	c := p.UDPClient(t)
	rr := []string{"<sip:p1.example.org;lr>", "<sip:p2.example.org;lr;ftag=x>", "<sip:p3.example.org;lr>"}
	for _, tc := range []struct {
		code string
		want bool
	}{{"100", false}, {"180", true}, {"183", true}, {"200", true}, {"486", false}} {
		c.Send(c.Request("INVITE", "sip:bob@127.0.0.1", "X-Code: "+tc.code,
			"Record-Route: "+rr[0]+", "+rr[1], "Record-Route: "+rr[2]))
		got := string(c.RecvRaw(2 * time.Second))
		if !strings.HasPrefix(got, "SIP/2.0 "+tc.code+" ") {
			t.Fatalf("%s: got %q", tc.code, got)
		}
		var vals []string
		for _, v := range headerValues(got, "Record-Route") {
			for _, one := range strings.Split(v, ",") {
				vals = append(vals, strings.TrimSpace(one))
			}
		}
		switch {
		case tc.want && strings.Join(vals, "|") != strings.Join(rr, "|"):
			t.Errorf("%s: Record-Route %q, want %q in order", tc.code, vals, rr)
		case !tc.want && len(vals) != 0:
			t.Errorf("%s: Record-Route %q, want none", tc.code, vals)
		}
	}
}

// TestReplyContentLengthZero: a locally built reply to a request that carried a body has
// "Content-Length: 0" and no body, over UDP and over TCP (where a wrong length breaks the stream).
func TestReplyContentLengthZero(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route() KSR.sl.sl_send_reply(488, "Not Acceptable Here") end`)
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	for _, c := range []*enginetest.Client{p.UDPClient(t), p.TCPClient(t)} {
		req := c.Request("INVITE", "sip:bob@127.0.0.1", "Content-Type: application/sdp")
		req = strings.Replace(req, "Content-Length: 0\r\n\r\n", "Content-Length: "+itoa(len(body))+"\r\n\r\n"+body, 1)
		for range 2 { // twice on the same TCP connection: the first reply's framing must be right
			c.Send(req)
			got := string(c.RecvRaw(2 * time.Second))
			if cl := headerValues(got, "Content-Length"); len(cl) != 1 || cl[0] != "0" {
				t.Errorf("%s: Content-Length %q, want [0]\n%s", c.Proto, cl, got)
			}
			if _, b, _ := strings.Cut(got, "\r\n\r\n"); b != "" {
				t.Errorf("%s: reply has a body %q", c.Proto, b)
			}
			if ct := headerValues(got, "Content-Type"); len(ct) != 0 {
				t.Errorf("%s: reply has Content-Type %q without a body", c.Proto, ct)
			}
		}
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
