package tm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/rr"
)

const rrScript = `
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			if KSR.rr.check_route_param("foo=bar") > 0 then KSR.info("route param foo=bar") end
			if KSR.rr.is_direction("downstream") > 0 then KSR.info("dir downstream") end
			if KSR.rr.is_direction("upstream") > 0 then KSR.info("dir upstream") end
			KSR.tm.t_relay()
		else
			KSR.sl.sl_send_reply(404, "No route")
		end
		return 1
	end
	KSR.rr.add_rr_param(";foo=bar")
	KSR.rr.record_route()
	if KSR.is_OPTIONS() then KSR.rr.remove_record_route() end
	KSR.tm.t_relay()
end
`

// inDialog is an in-dialog request (To tag set) with the given From/To tags and Route set.
func inDialog(c *enginetest.Client, method, ruri, fromTag, toTag string, route ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + ruri + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/" + c.Proto + " " + c.Addr.String() + ";rport;branch=z9hG4bK" + enginetest.RandHex(6) + "\r\n")
	for _, r := range route {
		b.WriteString("Route: " + r + "\r\n")
	}
	b.WriteString("Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=" + fromTag + "\r\nTo: <sip:b@y>;tag=" + toTag + "\r\n")
	b.WriteString("Call-ID: dlg-" + enginetest.RandHex(4) + "\r\nCSeq: 2 " + method + "\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// TestRecordRouteParams: add_rr_param goes into the Record-Route; in-dialog requests loose-routed on it see
// the parameter (check_route_param) and their direction by the ftag (is_direction); remove_record_route
// takes the Record-Route out again.
func TestRecordRouteParams(t *testing.T) {
	pp := startPeers(t, peerConfig+"[modules.siputils]\n", 1, func(*peers) string { return rrScript })
	proxy := pp.p.UDP.String()
	inv := pp.uac.Request("INVITE", pp.uasURI(0))
	pp.uac.Send(inv)
	got := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
	ftag := strings.TrimPrefix(strings.SplitN(header([]byte(inv), "From")[0], ";", 2)[1], "tag=")
	if rr, want := header(got, "Record-Route"), "<sip:"+proxy+";lr;ftag="+ftag+";foo=bar>"; len(rr) != 1 || rr[0] != want {
		t.Fatalf("Record-Route %v, want %s", rr, want)
	}

	pp.uac.Send(pp.uac.Request("OPTIONS", pp.uasURI(0)))
	if rr := header(recvRequest(t, pp.uas[0], "OPTIONS", 2*time.Second), "Record-Route"); len(rr) != 0 {
		t.Fatalf("remove_record_route left %v", rr)
	}

	for _, tc := range []struct {
		name, from, to, dir string
	}{
		{"caller to callee", ftag, "b1", "downstream"},
		{"callee to caller", "b1", ftag, "upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(pp.p.Log.String(), "dir "+tc.dir)
			pp.uac.Send(inDialog(pp.uac, "INFO", pp.uasURI(0), tc.from, tc.to, "<sip:"+proxy+";lr;ftag="+ftag+";foo=bar>"))
			got := recvRequest(t, pp.uas[0], "INFO", 2*time.Second)
			if r := header(got, "Route"); len(r) != 0 {
				t.Errorf("our Route was not removed: %v", r)
			}
			log := pp.p.Log.WaitCount(t, "dir "+tc.dir, before+1, 2*time.Second)
			if strings.Count(log, "dir "+tc.dir) != before+1 || !strings.Contains(log, "route param foo=bar") {
				t.Errorf("want %q and the route param in the log:\n%s", "dir "+tc.dir, log)
			}
		})
	}
}

// TestStrictRouting: loose_route's RFC 3261 §16.4 compatibility with a strict router upstream (our Route
// came as the Request-URI: the last Route becomes the R-URI) and §16.12.1.2 toward a strict next hop (it
// becomes the R-URI, the R-URI goes last in Route).
func TestStrictRouting(t *testing.T) {
	pp := startPeers(t, peerConfig+"[modules.siputils]\n", 1, func(*peers) string { return rrScript })
	proxy, uas := pp.p.UDP.String(), pp.uas[0].Addr.String()
	for _, tc := range []struct {
		name         string
		ruri         string
		route        []string
		wantLine     string
		wantRoute    []string
		wantParamLog bool
	}{
		{"strict router upstream", "sip:" + proxy + ";lr;foo=bar", []string{"<sip:bob@" + uas + ">"},
			"INFO sip:bob@" + uas + " SIP/2.0", nil, true},
		{"strict next hop", "sip:carol@example.com", []string{"<sip:" + proxy + ";lr>", "<sip:" + uas + ">"},
			"INFO sip:" + uas + " SIP/2.0", []string{"<sip:carol@example.com>"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(pp.p.Log.String(), "route param foo=bar")
			pp.uac.Send(inDialog(pp.uac, "INFO", tc.ruri, "a1", "b1", tc.route...))
			got := recvRequest(t, pp.uas[0], "INFO", 2*time.Second)
			if startLine(got) != tc.wantLine {
				t.Errorf("request line %q, want %q", startLine(got), tc.wantLine)
			}
			if r := header(got, "Route"); strings.Join(r, ",") != strings.Join(tc.wantRoute, ",") {
				t.Errorf("Route %v, want %v", r, tc.wantRoute)
			}
			// the route logs before it relays: the line is there once the request arrived
			if n := strings.Count(pp.p.Log.String(), "route param foo=bar"); (n > before) != tc.wantParamLog {
				t.Errorf("check_route_param on the R-URI's params: got %v, want %v", n > before, tc.wantParamLog)
			}
		})
	}
}

// TestRoutePVs: $route_uri is the first Route of the request as received (parameters included, also after
// loose_route), $rdir the direction by its ftag, as Kamailio's rr exports them.
func TestRoutePVs(t *testing.T) {
	p := enginetest.Start(t, tmConfig, "function ksr_request_route() end")
	uri, ok := p.E.LookupPV("route_uri")
	rdir, ok2 := p.E.LookupPV("rdir")
	var lr func(*engine.Msg) int
	if inst, found := p.E.Module("rr"); found {
		for _, ex := range inst.(*rr.RR).Exports() {
			if ex.Name == "loose_route" {
				lr = ex.Fn.(func(*engine.Msg) int)
			}
		}
	}
	if !ok || !ok2 || lr == nil {
		t.Fatal("rr PVs or loose_route missing")
	}
	for _, tc := range []struct {
		name, from, route, uri, dir string
	}{
		{"downstream", "a1", "<sip:" + p.UDP.String() + ";lr;ftag=a1;foo=bar>, <sip:next.example.com;lr>", "sip:" + p.UDP.String() + ";lr;ftag=a1;foo=bar", "downstream"},
		{"upstream", "b1", "<sip:" + p.UDP.String() + ";lr;ftag=a1>", "sip:" + p.UDP.String() + ";lr;ftag=a1", "upstream"},
		{"no ftag is downstream", "b1", "<sip:" + p.UDP.String() + ";lr>", "sip:" + p.UDP.String() + ";lr", "downstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := enginetest.Msg(t, p, "BYE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKx\r\n"+
				"Route: "+tc.route+"\r\nFrom: <sip:a@x>;tag="+tc.from+"\r\nTo: <sip:b@y>;tag=zz\r\nCall-ID: pv\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
			if r := lr(m); r != 1 {
				t.Fatalf("loose_route: %d", r)
			}
			if got := uri.Get(m, "").S; got != tc.uri {
				t.Errorf("$route_uri %q, want %q", got, tc.uri)
			}
			if got := rdir.Get(m, "name").S; got != tc.dir {
				t.Errorf("$rdir(name) %q, want %q", got, tc.dir)
			}
		})
	}
}
