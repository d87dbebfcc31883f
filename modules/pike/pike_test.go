package pike_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/pike"
)

// script answers 200 when pike lets the request through and 503 "Pike -1"/"Pike -2" when it does not, as a
// Kamailio script would (pike first, then drop or answer).
const script = `
function ksr_request_route()
	local r = KSR.pike.pike_check_req()
	if r < 0 then
		KSR.sl.sl_send_reply(503, "Pike " .. r)
		return
	end
	KSR.sl.sl_send_reply(200, "OK")
end
`

// source is a UDP client bound to its own loopback address (127.0.0.x), so pike sees distinct sources.
type source struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
	n    int
}

func newSource(t *testing.T, ip string, to netip.AddrPort) *source {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("bind %s: %v", ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &source{t: t, conn: conn, to: to}
}

// send sends one OPTIONS and returns the reply's status code and reason.
func (s *source) send() string {
	s.t.Helper()
	s.n++
	la := s.conn.LocalAddr().String()
	req := fmt.Sprintf("OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK-%d-%s\r\n"+
		"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: %d-%s\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", la, s.n, la, s.n, la)
	if _, err := s.conn.WriteToUDPAddrPort([]byte(req), s.to); err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := s.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		s.t.Fatalf("request %d from %s: no reply: %v", s.n, la, err)
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return strings.TrimPrefix(line, "SIP/2.0 ")
}

// burst sends n requests one after the other and counts the answers.
func (s *source) burst(n int) (ok, first, blocked int, order []string) {
	for i := 0; i < n; i++ {
		r := s.send()
		switch r {
		case "200 OK":
			ok++
		case "503 Pike -2":
			first++
		case "503 Pike -1":
			blocked++
		default:
			s.t.Fatalf("unexpected reply %q", r)
		}
		if len(order) == 0 || order[len(order)-1] != r {
			order = append(order, r)
		}
	}
	return
}

func top(t *testing.T, p *enginetest.Proxy, args ...string) pike.Top {
	t.Helper()
	inst, _ := p.E.Module("pike")
	cmd := inst.(engine.Commander).RPC()[0]
	if cmd.Name != "pike.top" {
		t.Fatalf("command %s", cmd.Name)
	}
	res, err := cmd.Fn(args)
	if err != nil {
		t.Fatalf("pike.top %v: %v", args, err)
	}
	// through JSON, as `siplua ctl pike.top` shows it
	b, _ := json.Marshal(res)
	var out pike.Top
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func find(tp pike.Top, ip string) (pike.TopItem, bool) {
	for _, it := range tp.List {
		if it.IP == ip {
			return it, true
		}
	}
	return pike.TopItem{}, false
}

// TestBurst: 300 requests within a second from one source with density 16: the first 15 pass, the 16th is
// the first marked (-2), the rest are refused (-1); another source is not affected; pike.top shows the
// flooding one as HOT, one that sent a quarter of the density as WARM. The sampling unit is 10 s so the burst falls in one unit (a burst across a unit
// boundary may pass up to 2 × density - 1: checked as a bound).
func TestBurst(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.pike]\nsampling_time_unit = 10\nreqs_density_per_unit = 16\n", script)
	flood := newSource(t, "127.0.0.2", p.UDP)
	calm := newSource(t, "127.0.0.3", p.UDP)
	start := time.Now()
	ok, first, blocked, order := flood.burst(300)
	if d := time.Since(start); d > time.Second {
		t.Logf("burst took %v", d)
	}
	if first != 1 || ok+first+blocked != 300 || ok < 15 || ok > 31 ||
		strings.Join(order, ",") != "200 OK,503 Pike -2,503 Pike -1" {
		t.Fatalf("burst: %d passed, %d first marked, %d refused, in order %v; want 15 (≤ 31) passed, then one -2, then -1", ok, first, blocked, order)
	}
	if ok != 15 {
		t.Logf("burst crossed a sampling unit: %d passed", ok)
	}
	for i := 0; i < 3; i++ { // under a quarter of the density: neither hot nor warm
		if r := calm.send(); r != "200 OK" {
			t.Fatalf("another source, request %d: %q, want 200 OK", i, r)
		}
	}
	hot := top(t, p) // default HOT
	it, found := find(hot, "127.0.0.2")
	if !found || it.Status != "HOT" || it.HitsCurr+it.HitsPrev != 300 || hot.MaxHits != 16 || hot.Rows != len(hot.List) {
		t.Fatalf("pike.top: %+v", hot)
	}
	if _, found := find(hot, "127.0.0.3"); found {
		t.Fatalf("pike.top HOT lists the calm source: %+v", hot)
	}
	all := top(t, p, "ALL")
	if it, found := find(all, "127.0.0.3"); !found || it.Status != "" || it.HitsCurr != 3 || it.Expires < 100 {
		t.Fatalf("pike.top ALL: %+v", all)
	}
	warm := newSource(t, "127.0.0.5", p.UDP)
	if ok, _, _, _ := warm.burst(6); ok != 6 { // a quarter of the density or more: warm
		t.Fatalf("warm source: %d of 6 passed", ok)
	}
	if w := top(t, p, "WARM"); len(w.List) != 1 || w.List[0].IP != "127.0.0.5" || w.List[0].Status != "WARM" {
		t.Fatalf("pike.top WARM: %+v", w)
	}
	gauge := -1.0
	for _, g := range p.E.ModuleGauges() {
		if g.Name == "pike_blocked_ips" {
			gauge = g.Value()
		}
	}
	if gauge != 1 {
		t.Fatalf("pike_blocked_ips = %v, want 1", gauge)
	}
	inst, _ := p.E.Module("pike")
	if _, err := inst.(engine.Commander).RPC()[0].Fn([]string{"bogus"}); err == nil || !strings.Contains(err.Error(), "ALL, HOT or WARM") {
		t.Fatalf("pike.top bogus: %v", err)
	}
}

// TestRecovery: a source that keeps sending above the density stays blocked from unit to unit; once it
// calms down it passes again after the swap that finds its previous unit calm (at most two units), and
// after remove_latency of silence pike forgets it.
func TestRecovery(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.pike]\nsampling_time_unit = 1\nreqs_density_per_unit = 5\nremove_latency = 4\n", script)
	s := newSource(t, "127.0.0.4", p.UDP)
	// 10 requests every 100 ms for 2.5 s: about 100 per unit, far above 5
	var got []string
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_, _, _, order := s.burst(10)
		got = append(got, order...)
	}
	joined := strings.Join(got, ",")
	marked := strings.Index(joined, "503 Pike -2")
	if marked < 0 || strings.Contains(joined[marked:], "200 OK") || strings.Count(joined, "503 Pike -2") != 1 {
		t.Fatalf("a source flooding for 2.5 s: %s; want blocked once and then to the end", joined)
	}
	// calm for two units: still in the table (remove_latency 4 s), no longer hot, and served again
	time.Sleep(2200 * time.Millisecond)
	if it, found := find(top(t, p, "ALL"), "127.0.0.4"); !found || it.Status != "" {
		t.Fatalf("pike.top ALL after two calm units: %+v, found %v; want listed, not hot", it, found)
	}
	if r := s.send(); r != "200 OK" {
		t.Fatalf("after calming down: %q, want 200 OK", r)
	}
	// silent for more than remove_latency: forgotten
	time.Sleep(5200 * time.Millisecond)
	if _, found := find(top(t, p, "ALL"), "127.0.0.4"); found {
		t.Fatalf("pike.top ALL still lists the source after remove_latency: %+v", top(t, p, "ALL"))
	}
}

// TestCheckIP calls pike_check_ip directly: Kamailio's codes, an address that is not one gives -1.
func TestCheckIP(t *testing.T) {
	p := enginetest.Start(t, "[modules.pike]\nsampling_time_unit = 10\nreqs_density_per_unit = 3\n", "function ksr_request_route() end")
	fn := p.Export(t, "pike", "pike_check_ip")
	m := enginetest.Msg(t, p, "OPTIONS sip:a@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n"+
		"From: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	for _, c := range []struct {
		ip   string
		want []string
	}{
		{"10.1.2.3", []string{"number:1", "number:1", "number:-2", "number:-1"}},
		{"10.1.2.4", []string{"number:1"}},
		{"[2001:db8::1]", []string{"number:1", "number:1", "number:-2"}},
		{"2001:db8::1", []string{"number:-1"}}, // the same address as above, without brackets
		{"bogus", []string{"number:-1"}},
		{"", []string{"number:-1"}},
	} {
		for i, want := range c.want {
			if got := enginetest.Call(t, fn, m, c.ip); got != want {
				t.Fatalf("pike_check_ip(%q) call %d = %s, want %s", c.ip, i+1, got, want)
			}
		}
	}
}

// TestValidate: clear errors for bad parameters.
func TestValidate(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"sampling_time_unit = 0", "sampling_time_unit: expected 1..3600 seconds, got 0"},
		{"reqs_density_per_unit = 0", "reqs_density_per_unit: expected 1..65000, got 0"},
		{"remove_latency = -1", "remove_latency: expected 1..86400 seconds, got -1"},
		{"max_ips = 2", "max_ips: expected 8..67108864, got 2"},
	} {
		p := &pike.Pike{SamplingTimeUnit: 2, ReqsDensityPerUnit: 30, RemoveLatency: 120, MaxIPs: 65536}
		var k string
		var v int
		fmt.Sscanf(strings.ReplaceAll(c.toml, " = ", " "), "%s %d", &k, &v)
		switch k {
		case "sampling_time_unit":
			p.SamplingTimeUnit = v
		case "reqs_density_per_unit":
			p.ReqsDensityPerUnit = v
		case "remove_latency":
			p.RemoveLatency = v
		case "max_ips":
			p.MaxIPs = v
		}
		if err := p.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.toml, err, c.want)
		}
	}
}

// BenchmarkCheckReq is pike_check_req on one message, as a worker calls it.
func BenchmarkCheckReq(b *testing.B) {
	p := enginetest.Start(b, "[modules.pike]\nreqs_density_per_unit = 65000\n", "function ksr_request_route() end")
	fn := p.Export(b, "pike", "pike_check_req").(func(*engine.Msg) int)
	m := enginetest.Msg(b, p, "OPTIONS sip:a@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n"+
		"From: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		fn(m)
	}
}
