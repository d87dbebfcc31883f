package http_async_client_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// routeScript asks the routing service where a call goes and relays it there from the resume route.
const routeScript = `
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		local rc = KSR.http_async_client.query(URL .. "?user=" .. KSR.pv.get("$rU"), "ksr_http_reply")
		if rc == 0 then return 1 end
		KSR.sl.sl_send_reply(500, "query failed " .. rc)
		return 1
	end
	KSR.tm.t_relay()
end

function ksr_http_reply()
	if KSR.pv.get("$http_ok") == 1 and KSR.pv.get("$http_rs") == 200 then
		KSR.pv.sets("$du", KSR.pv.get("$http_rb"))
		KSR.tm.t_relay()
	else
		KSR.tm.t_reply(503, "Routing service unavailable")
	end
end
`

func needSuspend(t *testing.T, p *enginetest.Proxy) {
	inst, ok := p.E.Module("tm")
	if !ok {
		t.Fatal("tm not loaded")
	}
	if _, ok := inst.(interface {
		Suspend(*engine.Msg) (uint32, uint32, error)
	}); !ok {
		t.Skip("tm has no Suspend/Continue (tmx t_suspend/t_continue, branch kemicore) in this tree")
	}
}

// TestAsyncHTTPFreesWorkers: a routing service that answers after 500 ms; 200 SIPp calls at once through
// siplua with 2 route workers all complete within a few seconds (holding a worker per query would take
// 200 × 0.5 s / 2 = 50 s), each routed to the address the service returned.
func TestAsyncHTTPFreesWorkers(t *testing.T) {
	uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/call-uas.xml", "-m", "200")
	var queries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		time.Sleep(500 * time.Millisecond)
		if r.URL.Query().Get("user") != "bob" {
			http.Error(w, "unknown user", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "sip:%s", uas.Addr())
	}))
	defer srv.Close()
	cfg := "[core]\nworkers = 2\n[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.http_async_client]\n"
	p := enginetest.Start(t, cfg, "URL = '"+srv.URL+"'\n"+routeScript)
	needSuspend(t, p)
	t0 := time.Now()
	uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/call-uac.xml", p.UDP.String(), "-m", "200", "-l", "200",
		"-r", "400", "-key", "target", "example.com", "-inf", enginetest.SIPpInjection(t, "bob"))
	if err := uac.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("200 calls with a 500 ms routing query each, 2 workers: %s", took)
	if took > 10*time.Second {
		t.Errorf("200 calls took %s: workers were held while waiting", took)
	}
	if n := queries.Load(); n != 200 {
		t.Errorf("%d queries, want 200", n)
	}
}

// TestAsyncHTTPErrors: a service that fails (404), one that does not answer in time, and one that is
// down all resume the route with $http_ok / $http_rs telling why; the caller gets the route's 503.
func TestAsyncHTTPErrors(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	}))
	defer slow.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct{ name, url string }{
		{"404", notFound.URL}, {"timeout", slow.URL}, {"down", down.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.http_async_client]\ntimeout = 300\n"
			p := enginetest.Start(t, cfg, "URL = '"+tc.url+"'\n"+routeScript)
			needSuspend(t, p)
			c := p.UDPClient(t)
			c.Send(c.Request("INVITE", "sip:bob@example.com", "Contact: <sip:alice@"+c.Addr.String()+">"))
			got := string(c.RecvFinal(5 * time.Second))
			if !strings.HasPrefix(got, "SIP/2.0 503 Routing service unavailable") {
				t.Errorf("final reply %q", strings.SplitN(got, "\r\n", 2)[0])
			}
		})
	}
	_ = strconv.Itoa
}

// TestAsyncHTTPThroughput (HTTP_ASYNC_BENCH=1): calls/s through http_async_client with a 100 ms routing
// service, against the same calls relayed with plain t_relay (SIPp at a rate above what either sustains).
func TestAsyncHTTPThroughput(t *testing.T) {
	if testing.Short() || !strings.Contains(strings.Join([]string{getenv("HTTP_ASYNC_BENCH")}, ""), "1") {
		t.Skip("set HTTP_ASYNC_BENCH=1 to measure")
	}
	const calls = 3000
	for _, mode := range []string{"t_relay", "http_async_client"} {
		uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/call-uas.xml", "-m", strconv.Itoa(calls))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(100 * time.Millisecond)
			fmt.Fprintf(w, "sip:%s", uas.Addr())
		}))
		script := "URL = '" + srv.URL + "'\n" + routeScript
		target := "example.com"
		if mode == "t_relay" {
			script = "function ksr_request_route()\n if KSR.siputils.has_totag() < 0 and KSR.is_INVITE() then KSR.rr.record_route() end\n" +
				" if KSR.siputils.has_totag() > 0 then KSR.rr.loose_route() end\n KSR.tm.t_relay()\nend\n"
			target = uas.Addr()
		}
		p := enginetest.Start(t, "[core]\nworkers = 2\n[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.http_async_client]\n", script)
		needSuspend(t, p)
		t0 := time.Now()
		uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/call-uac.xml", p.UDP.String(), "-m", strconv.Itoa(calls),
			"-l", "1000", "-r", "1000", "-key", "target", target, "-inf", enginetest.SIPpInjection(t, "bob"))
		if err := uac.Wait(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		_ = uas.Wait(10 * time.Second)
		srv.Close()
		t.Logf("%s: %d calls in %s = %.0f calls/s", mode, calls, took.Round(time.Millisecond), float64(calls)/took.Seconds())
	}
}

func getenv(k string) string { return os.Getenv(k) }
