package metrics_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/metrics"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const script = `
function ksr_request_route()
	if KSR.is_method("BYE") then error("boom") end
	if KSR.is_method("CANCEL") then KSR.x.drop() end
	KSR.sl.sl_send_reply(200, "OK")
end`

func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

func TestScrapeCountersMove(t *testing.T) {
	p := enginetest.StartChecked(t, "[core]\nworkers = 2\n[modules.sl]\n", script)
	s, err := metrics.Listen("127.0.0.1:0", p.E, "test", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	url := "http://" + s.Addr().String() + "/metrics"

	before := scrape(t, url)
	for _, k := range []string{`siplua_requests_received_total{method="OPTIONS"}`, `siplua_script_generation`,
		`siplua_reloads_total{result="ok"}`, `siplua_workers`, `siplua_queue_depth`, `siplua_workers_busy`,
		`siplua_build_info{version="test"}`, `go_goroutines`, `siplua_route_timeouts_total`, `siplua_script_generations_live`} {
		if _, ok := before[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	c := p.UDPClient(t)
	for range 3 {
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
		c.RecvResponse(2 * time.Second)
	}
	c.Send(c.Request("BYE", "sip:127.0.0.1")) // script error: 500
	c.RecvResponse(2 * time.Second)
	c.Send(c.Request("CANCEL", "sip:127.0.0.1"))                                                              // dropped by the script
	c.Send("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP " + c.Addr.String() + ";rport;branch=z9hG4bKx\r\n\r\n") // no From: 400
	c.RecvResponse(2 * time.Second)
	c.Send(c.Request("INFO", "sip:127.0.0.1", "Call-ID: another")) // strict check: 400 Duplicate Call-ID header
	c.RecvResponse(2 * time.Second)
	c.Send(strings.Replace(c.Request("INFO", "sip:127.0.0.1"), ";rport;", ";rport=x;", 1)) // unusable top Via: dropped
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	p.WriteFile(t, "script.lua", "function broken(")
	if _, err := p.Reload(); err == nil {
		t.Fatal("broken script accepted")
	}
	deadline := time.Now().Add(2 * time.Second)
	var after map[string]float64
	for {
		after = scrape(t, url)
		if after[`siplua_messages_dropped_total{reason="script"}`] >= 1 && after[`siplua_messages_dropped_total{reason="bad_via"}`] >= 1 ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, tc := range []struct {
		metric string
		delta  float64
	}{
		{`siplua_requests_received_total{method="OPTIONS"}`, 4},
		{`siplua_requests_received_total{method="BYE"}`, 1},
		{`siplua_requests_received_total{method="CANCEL"}`, 1},
		{`siplua_replies_sent_total{class="2xx",origin="local"}`, 3},
		{`siplua_replies_sent_total{class="4xx",origin="local"}`, 2},
		{`siplua_requests_received_total{method="INFO"}`, 2},
		{`siplua_messages_rejected_total{reason="duplicate_header"}`, 1},
		{`siplua_messages_rejected_total{reason="version"}`, 0},
		{`siplua_messages_dropped_total{reason="bad_via"}`, 1},
		{`siplua_replies_sent_total{class="5xx",origin="local"}`, 1},
		{`siplua_replies_sent_total{class="2xx",origin="relayed"}`, 0},
		{`siplua_lua_errors_total`, 1},
		{`siplua_messages_dropped_total{reason="script"}`, 1},
		{`siplua_messages_dropped_total{reason="parse_error"}`, 1},
		{`siplua_messages_dropped_total{reason="queue_full"}`, 0},
		{`siplua_route_duration_seconds_count{route="request"}`, 5},
		{`siplua_reloads_total{result="ok"}`, 1},
		{`siplua_reloads_total{result="failed"}`, 1},
		{`siplua_script_generation`, 1},
		{`siplua_route_timeouts_total`, 0},
	} {
		if got := after[tc.metric] - before[tc.metric]; got != tc.delta {
			t.Errorf("%s moved by %v, want %v", tc.metric, got, tc.delta)
		}
	}
	if after[`siplua_route_duration_seconds_sum{route="request"}`] <= 0 {
		t.Errorf("route duration sum is 0")
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", script)
	for _, on := range []bool{false, true} {
		s, err := metrics.Listen("127.0.0.1:0", p.E, "test", on, nil)
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve()
		resp, err := http.Get("http://" + s.Addr().String() + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.Close()
		if want := map[bool]int{false: 404, true: 200}[on]; resp.StatusCode != want {
			t.Errorf("pprof=%v: status %d, want %d", on, resp.StatusCode, want)
		}
	}
}

// TestForwardCounted: a request relayed statelessly by KSR.forward moves requests_forwarded_total by one
// per request, and the relayed reply is counted as relayed, not local.
func TestForwardCounted(t *testing.T) {
	p := enginetest.StartChecked(t, "[modules.sl]\n", `
function ksr_request_route()
	KSR.forward_uri(KSR.hdr.get("X-To"))
end
function ksr_reply_route() end`)
	s, err := metrics.Listen("127.0.0.1:0", p.E, "test", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	url := "http://" + s.Addr().String() + "/metrics"
	uas := enginetest.NewUDPClient(t, p.UDP)
	c := p.UDPClient(t)
	before := scrape(t, url)
	for range 2 {
		c.Send(c.Request("MESSAGE", "sip:bob@127.0.0.1", "X-To: sip:"+uas.Addr.String()))
		req := uas.RecvRaw(2 * time.Second)
		uas.Send(enginetest.ReplyTo(string(req), 202))
		if r := c.RecvResponse(2 * time.Second); r.StatusCode != 202 {
			t.Fatalf("UAC got %d", r.StatusCode)
		}
	}
	want := []struct {
		metric string
		delta  float64
	}{
		{`siplua_requests_forwarded_total`, 2},
		{`siplua_replies_sent_total{class="2xx",origin="relayed"}`, 2},
		{`siplua_replies_sent_total{class="2xx",origin="local"}`, 0},
	}
	// A message is counted once its send returned, which can be after the peer has read it: scrape again
	// until the counters settle (a flake under -race when scraped once).
	var after map[string]float64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		after = scrape(t, url)
		settled := true
		for _, tc := range want {
			settled = settled && after[tc.metric]-before[tc.metric] == tc.delta
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	for _, tc := range want {
		if got := after[tc.metric] - before[tc.metric]; got != tc.delta {
			t.Errorf("%s moved by %v, want %v", tc.metric, got, tc.delta)
		}
	}
}
