package sanity_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/sanity"
)

// exitScript is the usual use: an insane request ends the route (sanity has answered it, or stays silent
// when Kamailio would), a sane one gets 200.
const exitScript = `
function ksr_request_route()
	if KSR.sanity.sanity_check_defaults() < 0 then
		return
	end
	KSR.sl.sl_send_reply(200, "OK")
end
`

// TestMalformed sends malformed requests that reach the script over UDP and TCP, checks the status line
// (and Unsupported for 420), or that nothing is sent back when Kamailio sends nothing, and that the same
// client is served normally right after.
func TestMalformed(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.sanity]\n", exitScript)
	for _, proto := range []string{"UDP", "TCP"} {
		for _, tc := range []struct {
			name, raw   string
			status      string // "" = no reply
			unsupported string
			udpOnly     bool // a stream is framed by Content-Length: the body cannot disagree with it
		}{
			{"valid", request("", nil), "200 OK", "", false},
			{"unknown R-URI scheme", request("OPTIONS http://bob@127.0.0.1 SIP/2.0", nil), "400 Bad Request URI", "", false},
			{"R-URI port out of range", request("INVITE sip:bob@127.0.0.1:70000 SIP/2.0", nil), "400 Bad Request URI", "", false},
			{"CSeq method mismatch", request("", map[string]string{"CSeq": "CSeq: 1 REGISTER"}),
				"400 CSeq method does not match request method", "", false},
			{"Expires not a number", request("REGISTER sip:127.0.0.1 SIP/2.0", nil, "Expires: soon"), "400 Expires value is illegal", "", false},
			{"Expires empty", request("REGISTER sip:127.0.0.1 SIP/2.0", nil, "Expires:"), "400 Bad Expires Header", "", false},
			{"Proxy-Require", request("", nil, "Proxy-Require: sec-agree"), "420 Bad Proxy Require Extension", "sec-agree", false},
			{"digest without nonce", request("", nil, `Authorization: Digest username="u", realm="r", uri="sip:x", response="00"`),
				"400 Bad Auth Credentials", "", false},
			{"digest with empty response", request("", nil, `Authorization: Digest username="u", realm="r", nonce="n", uri="sip:x", response=""`),
				"400 Auth Empty Response", "", false},
			{"digest qop without cnonce", request("", nil, `Authorization: Digest username="u", realm="r", nonce="n", uri="sip:x", response="00", qop=auth, nc=00000001`),
				"400 Bad Auth Credentials", "", false},
			{"non-digest credentials (silent)", request("", nil, "Proxy-Authorization: Basic dXNlcjpwYXNz"), "", "", false},
			// a second Call-ID: the engine's strict checks answer before any script (sanity would drop it)
			{"second Call-ID", request("", nil, "Call-ID: again@test"), "400 Duplicate Call-ID header", "", false},
			// a datagram shorter than its Content-Length: the engine's parser refuses it before the script
			{"Content-Length above the body", request("", map[string]string{"Content-Length": "Content-Length: 1"}), "400 Bad Request", "", true},
			{"Content-Length below the body", request("", map[string]string{"Content-Length": "Content-Length: 2", "body": "abcd"}),
				"400 Content-Length mis-match", "", true},
		} {
			if tc.udpOnly && proto == "TCP" {
				continue
			}
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				c := p.UDPClient(t)
				if proto == "TCP" {
					c = p.TCPClient(t)
				}
				raw := strings.ReplaceAll(tc.raw, "SIP/2.0/UDP 127.0.0.1:PORT", "SIP/2.0/"+proto+" "+c.Addr.String()+";rport")
				c.Send(raw)
				if tc.status == "" {
					if b, err := c.TryRecv(300 * time.Millisecond); err == nil {
						t.Fatalf("want no reply, got %q", firstLine(string(b)))
					}
				} else {
					r := c.RecvResponse(2 * time.Second)
					if got := r.StartLine(); got != "SIP/2.0 "+tc.status {
						t.Fatalf("got %q, want %q", got, "SIP/2.0 "+tc.status)
					}
					if h := r.GetHeader("Unsupported"); (h == nil && tc.unsupported != "") || (h != nil && h.Value() != tc.unsupported) {
						t.Fatalf("Unsupported: %v, want %q", h, tc.unsupported)
					}
				}
				// the same connection or socket is served normally afterwards
				c.Send(c.Request("OPTIONS", "sip:bob@127.0.0.1"))
				if r := c.RecvResponse(2 * time.Second); r.StatusCode != 200 {
					t.Fatalf("next request: %d %s", r.StatusCode, r.Reason)
				}
			})
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestNoreply: with noreply, sanity_check sends nothing and sanity_reply sends the kept reply after the
// script had its say (here a header added to it); without a failure it sends 500 "Server Sanity Failure".
func TestNoreply(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.sanity]\nnoreply = true\n", `
function ksr_request_route()
	if KSR.hdr.get("X-Fn") == "reply" then
		KSR.sanity.sanity_reply()
		return
	end
	if KSR.sanity.sanity_check(1024, 7) < 0 then
		KSR.hdr.append_to_reply("X-Why: sanity\r\n")
		KSR.sanity.sanity_reply()
		return
	end
	KSR.sl.sl_send_reply(200, "OK")
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:bob@127.0.0.1:99999"))
	r := c.RecvResponse(2 * time.Second)
	if r.StatusCode != 400 || r.Reason != "Bad Request URI" || r.GetHeader("X-Why") == nil {
		t.Fatalf("got %s", r.StartLine())
	}
	if _, err := c.TryRecv(200 * time.Millisecond); err == nil {
		t.Fatal("a second reply was sent")
	}
	c.Send(c.Request("OPTIONS", "sip:bob@127.0.0.1", "X-Fn: reply"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 500 || r.Reason != "Server Sanity Failure" {
		t.Fatalf("sanity_reply without a failed check: %s", r.StartLine())
	}
}

// TestReturnCodes calls the exports directly: 1 sane, -1 insane; sanity_reply without noreply returns 1
// and sends nothing; a reply message passes the request-line checks.
func TestReturnCodes(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.sanity]\ndefault_checks = 4\n", "function ksr_request_route() end")
	check := p.Export(t, "sanity", "sanity_check")
	defaults := p.Export(t, "sanity", "sanity_check_defaults")
	reply := p.Export(t, "sanity", "sanity_reply")
	sane := enginetest.Msg(t, p, request("", nil))
	bad := enginetest.Msg(t, p, request("", map[string]string{"CSeq": "CSeq: 1 BYE"}))
	res := enginetest.Msg(t, p, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"+
		"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"sane", enginetest.Call(t, check, sane, sanity.DefaultChecks, sanity.DefaultURIChecks), "number:1"},
		{"cseq method", enginetest.Call(t, check, bad, sanity.CheckCSeqMethod, 0), "number:-1"},
		{"defaults skip cseq (default_checks = 4)", enginetest.Call(t, defaults, bad), "number:1"},
		{"reply message", enginetest.Call(t, check, res, 0x7fff, 15), "number:1"},
		{"sanity_reply without noreply", enginetest.Call(t, reply, bad), "number:1"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
	if bad.Replied && bad.IsRequest() {
		// the cseq method failure answered (the message context records it)
	} else {
		t.Errorf("the failed check did not answer the request")
	}
}

// TestValidate: clear errors for bad masks.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		s    sanity.Sanity
		want string
	}{
		{sanity.Sanity{DefaultChecks: 1 << 15, URIChecks: 7}, "default_checks: expected a bit mask 0..32767, got 32768"},
		{sanity.Sanity{DefaultChecks: 999, URIChecks: -1}, "uri_checks: expected a bit mask 0..15, got -1"},
	} {
		if err := c.s.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}

// BenchmarkDefaults is sanity_check_defaults on a normal INVITE with an SDP body.
func BenchmarkDefaults(b *testing.B) {
	p := enginetest.Start(b, "[modules.sl]\n[modules.sanity]\n", "function ksr_request_route() end")
	fn := p.Export(b, "sanity", "sanity_check_defaults").(func(*engine.Msg) int)
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	m := enginetest.Msg(b, p, strings.ReplaceAll(request("INVITE sip:bob@example.com SIP/2.0",
		map[string]string{"body": body}, "Contact: <sip:alice@127.0.0.1:5099>", "Content-Type: application/sdp",
		"Expires: 120", "Supported: replaces, timer"), "PORT", "5099"))
	if fn(m) != 1 {
		b.Fatal("the INVITE is not sane")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		fn(m)
	}
}
