package rr_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const config = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n"

const script = `
function ksr_request_route()
	if KSR.is_ACK() then return end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() return end
		KSR.sl.sl_send_reply(404, "Not here")
		return
	end
	local a = KSR.rr.record_route()
	local b = KSR.rr.record_route()
	KSR.sl.sl_send_reply(200, "rr " .. a .. " " .. b .. " lr " .. KSR.rr.loose_route())
end`

// inDialog is an in-dialog INFO from c with the R-URI and Route header lines given.
func inDialog(c *enginetest.Client, ruri string, routes ...string) string {
	var b strings.Builder
	b.WriteString("INFO " + ruri + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + c.Addr.String() + ";rport;branch=z9hG4bK" + enginetest.RandHex(6) + "\r\n")
	for _, r := range routes {
		b.WriteString("Route: " + r + "\r\n")
	}
	b.WriteString("Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=a1\r\nTo: <sip:b@y>;tag=b1\r\n")
	b.WriteString("Call-ID: rr-" + enginetest.RandHex(4) + "\r\nCSeq: 2 INFO\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

func lines(raw []byte, name string) (start string, vals []string) {
	ls := strings.Split(string(raw), "\r\n")
	for _, l := range ls[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			for _, one := range strings.Split(v, ",") {
				vals = append(vals, strings.TrimSpace(one))
			}
		}
	}
	return ls[0], vals
}

// TestLooseRouteStrict: loose_route with Route sets of two and more entries, as Kamailio's rr (loose.c)
// handles them. A strict router upstream put our Record-Route into the R-URI (RFC 3261 §16.4): the next
// loose hop becomes $du and the last entry the R-URI; a strict next hop becomes the R-URI itself. Toward a
// strict next hop (§16.12.1.2), the R-URI goes last in the Route set, after the remaining entries in order.
func TestLooseRouteStrict(t *testing.T) {
	p := enginetest.Start(t, config, script)
	uac := p.UDPClient(t)
	a, b := enginetest.NewUDPClient(t, p.UDP), enginetest.NewUDPClient(t, p.UDP)
	me, A, B := p.UDP.String(), a.Addr.String(), b.Addr.String()
	for _, tc := range []struct {
		name      string
		ruri      string
		routes    []string
		at        *enginetest.Client // who receives the request
		wantStart string
		wantRoute []string
	}{
		{"strict upstream, loose next hop", "sip:" + me + ";lr", []string{"<sip:" + B + ";lr>", "<sip:bob@" + A + ">"},
			b, "INFO sip:bob@" + A + " SIP/2.0", []string{"<sip:" + B + ";lr>"}},
		{"strict upstream, strict next hop", "sip:" + me + ";lr", []string{"<sip:" + B + ">", "<sip:bob@" + A + ">"},
			b, "INFO sip:" + B + " SIP/2.0", []string{"<sip:bob@" + A + ">"}},
		{"strict upstream, our r2 entry first, one header", "sip:" + me + ";lr",
			[]string{"<sip:" + me + ";lr;r2=on>, <sip:" + B + ";lr>, <sip:x@" + B + ">, <sip:bob@" + A + ">"},
			b, "INFO sip:bob@" + A + " SIP/2.0", []string{"<sip:" + B + ";lr>", "<sip:x@" + B + ">"}},
		{"strict next hop, three entries", "sip:carol@example.com",
			[]string{"<sip:" + me + ";lr>", "<sip:" + A + ">", "<sip:" + B + ";lr>"},
			a, "INFO sip:" + A + " SIP/2.0", []string{"<sip:" + B + ";lr>", "<sip:carol@example.com>"}},
		{"loose next hops, two headers", "sip:carol@example.com",
			[]string{"<sip:" + me + ";lr>, <sip:" + A + ";lr>", "<sip:" + B + ";lr>"},
			a, "INFO sip:carol@example.com SIP/2.0", []string{"<sip:" + A + ";lr>", "<sip:" + B + ";lr>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac.Send(inDialog(uac, tc.ruri, tc.routes...))
			got := tc.at.RecvRaw(2 * time.Second)
			start, route := lines(got, "Route")
			if start != tc.wantStart {
				t.Errorf("request line %q, want %q", start, tc.wantStart)
			}
			if strings.Join(route, " ") != strings.Join(tc.wantRoute, " ") {
				t.Errorf("Route %q, want %q", route, tc.wantRoute)
			}
			tc.at.Send(strings.Replace(strings.Replace(string(got), start, "SIP/2.0 200 OK", 1), "INFO", "INFO", 1))
			if r := uac.RecvResponse(2 * time.Second); r.StatusCode != 200 {
				t.Errorf("UAC got %d", r.StatusCode)
			}
		})
	}
}

// TestReturnCodes: record_route once per message (a second call is refused, -1, as in Kamailio);
// loose_route is -1 without a Route header.
func TestReturnCodes(t *testing.T) {
	p := enginetest.Start(t, config, script)
	c := p.UDPClient(t)
	c.Send(c.Request("INVITE", "sip:bob@127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.Reason != "rr 1 -1 lr -1" {
		t.Fatalf("got %q, want %q", r.Reason, "rr 1 -1 lr -1")
	}
}
