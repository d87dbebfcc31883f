package dispatcher_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// script selects from set 1 with the algorithm in X-Alg and fails over in the failure route, as
// Kamailio's dispatcher example does.
const script = `
function ksr_request_route()
	local alg = tonumber(KSR.hdr.get("X-Alg") or "4")
	if KSR.dispatcher.ds_select_dst(1, alg) < 0 then
		KSR.sl.sl_send_reply(503, "No destination")
		return
	end
	KSR.tm.t_on_failure("ds_failure")
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ds_failure()
	if KSR.tm.t_is_canceled() > 0 then
		return
	end
	KSR.dispatcher.ds_mark_dst()
	if KSR.dispatcher.ds_next_dst() > 0 then
		KSR.tm.t_on_failure("ds_failure")
		KSR.tm.t_relay()
	end
end

function ds_event(evname)
	local ev = evname -- the event name is the argument, as Kamailio passes it to KEMI callbacks
	KSR.info("dsevent " .. ev .. " " .. KSR.pv.get("$ru") .. " code=" .. tostring(KSR.pv.get("$dsg(code)")) .. "\n")
end
`

// luaCfg: a generous route budget, since the race detector on a shared 2-core machine makes a route slow.
const luaCfg = "[lua]\nscript = \"script.lua\"\nroute_timeout = 3000\n"

func config(extra string, dsts ...string) string {
	var b strings.Builder
	b.WriteString(luaCfg + "[modules.sl]\n[modules.tm]\nfr_timer = 400\n[modules.pv]\n[modules.hdr]\n")
	b.WriteString("[modules.dispatcher]\nflags = 2\nevent_callback = \"ds_event\"\n" + extra + "\n")
	for _, d := range dsts {
		b.WriteString("[[modules.dispatcher.dst]]\n" + d + "\n")
	}
	return b.String()
}

func dst(set int, uri, attrs string) string {
	return fmt.Sprintf("set = %d\nuri = %q\nattrs = %q\n", set, uri, attrs)
}

func three(t *testing.T) []*uas { return []*uas{newUAS(t), newUAS(t), newUAS(t)} }

// TestDistribution: round robin spreads evenly, weight (alg 9, weight=10/20/70) and relative weight (alg
// 11, rweight=1/2/7) follow 1:2:7, within ±5 % of the calls; every call answered.
func TestDistribution(t *testing.T) {
	u := three(t)
	p := enginetest.Start(t, config("", dst(1, u[0].uri(), "weight=10;rweight=1"), dst(1, u[1].uri(), "weight=20;rweight=2"),
		dst(1, u[2].uri(), "weight=70;rweight=7")), script)
	for _, c := range []struct {
		name string
		alg  int
		want [3]int // per 300
	}{
		{"round robin", 4, [3]int{100, 100, 100}},
		{"weight", 9, [3]int{30, 60, 210}},
		{"relative weight", 11, [3]int{30, 60, 210}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before [3]int64
			for i := range u {
				before[i] = u[i].reqs.Load()
			}
			ok, bad := load(t, p, 300, 3, fmt.Sprintf("X-Alg: %d", c.alg))
			if ok != 300 {
				t.Fatalf("%d of 300 calls answered 200; others: %v", ok, bad)
			}
			for i := range u {
				got := int(u[i].reqs.Load() - before[i])
				if !within(got, c.want[i], 300, 5) {
					t.Errorf("destination %d got %d calls, want %d ± 5 %%", i, got, c.want[i])
				}
			}
		})
	}
}

// TestFailoverAndProbing: a stopped destination is taken out of rotation (failover in the failure route
// and OPTIONS probing), no call fails meanwhile, it comes back when it answers again, and the event
// callback runs on each change.
func TestFailoverAndProbing(t *testing.T) {
	u := three(t)
	p := enginetest.Start(t, config("ds_ping_interval = 1\nds_probing_mode = 1", dst(1, u[0].uri(), ""), dst(1, u[1].uri(), ""),
		dst(1, u[2].uri(), "")), script)
	gauge := gauges(t, p)
	eventually(t, 3*time.Second, func() bool { return u[0].pings.Load() > 0 && u[1].pings.Load() > 0 && u[2].pings.Load() > 0 },
		"every destination pinged")
	if ok, bad := load(t, p, 30, 3); ok != 30 {
		t.Fatalf("before: %d of 30 answered; %v", ok, bad)
	}

	u[1].stop()
	stopped := time.Now()
	// calls keep flowing while the destination is found dead: none may fail
	var stop atomic.Bool
	var wg sync.WaitGroup
	var okN, badN atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			ok, bad := load(t, p, 6, 3)
			okN.Add(int64(ok))
			badN.Add(int64(len(bad)))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	eventually(t, 2500*time.Millisecond, func() bool { return gauge["dispatcher_destinations_inactive"]() == 1 },
		"the stopped destination marked inactive within two probe intervals")
	t.Logf("marked inactive after %s", time.Since(stopped).Round(time.Millisecond))
	// with the destination out of rotation no call goes there: all are answered at once
	time.Sleep(500 * time.Millisecond)
	if l := flagsOf(t, p); l[u[1].uri()] != "IP" {
		t.Errorf("dispatcher.list flags of the stopped destination = %q, want IP", l[u[1].uri()])
	}

	u[1].start()
	eventually(t, 3*time.Second, func() bool { return gauge["dispatcher_destinations_active"]() == 3 },
		"the restarted destination active again")
	before := u[1].reqs.Load()
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if badN.Load() != 0 || okN.Load() == 0 {
		t.Fatalf("calls during the outage: %d answered, %d failed", okN.Load(), badN.Load())
	}
	if ok, bad := load(t, p, 30, 3); ok != 30 {
		t.Fatalf("after: %d of 30 answered; %v", ok, bad)
	}
	if u[1].reqs.Load() <= before {
		t.Errorf("the restarted destination gets no calls")
	}
	logs := p.Log.String()
	if !strings.Contains(logs, "dsevent dispatcher:dst-down") {
		t.Errorf("event callback not run for dst-down")
	}
	if !strings.Contains(logs, "dsevent dispatcher:dst-up "+u[1].uri()+" code=200") {
		t.Errorf("event callback not run for dst-up of %s (with $ru and $dsg(code))", u[1].uri())
	}
}

// TestProbingOnly: without traffic, the pinger alone takes a silent destination out within two probe
// intervals (ping timeout = the interval), the callback sees the 408, and a destination answering with
// a code listed in ds_ping_reply_codes stays active while one answering with another code goes down.
func TestProbingOnly(t *testing.T) {
	u := three(t)
	u[2].opt.Store(404)
	p := enginetest.Start(t, config("ds_ping_interval = 1\nds_probing_mode = 1\nds_ping_reply_codes = \"code=404\"",
		dst(1, u[0].uri(), ""), dst(1, u[1].uri(), ""), dst(1, u[2].uri(), "")), script)
	gauge := gauges(t, p)
	eventually(t, 3*time.Second, func() bool { return u[2].pings.Load() > 0 && flagsOf(t, p)[u[2].uri()] == "AP" },
		"a destination answering 404 (listed in ds_ping_reply_codes) probed and active")
	u[1].stop()
	stopped := time.Now()
	eventually(t, 2500*time.Millisecond, func() bool { return gauge["dispatcher_destinations_inactive"]() == 1 },
		"the silent destination marked inactive within two probe intervals")
	if d := time.Since(stopped); d > 2*time.Second {
		t.Errorf("marked inactive after %s, more than two probe intervals", d)
	}
	t.Logf("marked inactive after %s", time.Since(stopped).Round(time.Millisecond))
	eventually(t, time.Second, func() bool {
		return strings.Contains(p.Log.String(), "dsevent dispatcher:dst-down "+u[1].uri()+" code=408")
	}, "event callback for dst-down with $ru = the destination and $dsg(code) = 408")
	u[0].opt.Store(486)
	eventually(t, 2500*time.Millisecond, func() bool { return flagsOf(t, p)[u[0].uri()] == "IP" },
		"a destination answering 486 (not listed) marked inactive")
	if f := flagsOf(t, p)[u[2].uri()]; f != "AP" {
		t.Errorf("the destination answering 404 went %s", f)
	}
}

// TestReloadUnderLoad: dispatcher.reload (ctl) and a config reload replace the list while calls flow;
// no call fails and the new destination gets calls.
func TestReloadUnderLoad(t *testing.T) {
	u := three(t)
	lines := func(us ...*uas) string {
		var b strings.Builder
		b.WriteString("# set uri flags priority attrs\n")
		for _, x := range us {
			b.WriteString("1 " + x.uri() + " 0 0\n")
		}
		return b.String()
	}
	cfg := luaCfg + "[modules.sl]\n[modules.tm]\nfr_timer = 400\n[modules.pv]\n[modules.hdr]\n[modules.dispatcher]\nflags = 2\nlist_file = \"dispatcher.list\"\n"
	p := enginetest.StartFiles(t, cfg, map[string]string{"script.lua": script, "dispatcher.list": lines(u[0], u[1])})
	listPath := filepath.Join(p.Dir, "dispatcher.list")
	reload := rpc(t, p, "dispatcher.reload")

	var stop atomic.Bool
	var wg sync.WaitGroup
	var okN, badN atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			ok, bad := load(t, p, 30, 3)
			okN.Add(int64(ok))
			badN.Add(int64(len(bad)))
		}
	}()
	for i := 0; i < 20; i++ {
		us := []*uas{u[0], u[1]}
		if i%2 == 0 {
			us = append(us, u[2])
		}
		if err := os.WriteFile(listPath, []byte(lines(us...)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := reload(nil); err != nil {
			t.Fatalf("dispatcher.reload: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// a config reload re-reads the list file too
	if err := os.WriteFile(listPath, []byte(lines(u[2])), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile, err := engine.LoadConfigFile(filepath.Join(p.Dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgFile.Listen = p.E.Config().Listen
	if _, err := p.E.Reload(cfgFile); err != nil {
		t.Fatalf("config reload: %v", err)
	}
	before := u[2].reqs.Load()
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if badN.Load() != 0 || okN.Load() < 100 {
		t.Fatalf("calls during the reloads: %d answered, %d failed", okN.Load(), badN.Load())
	}
	r0 := u[0].reqs.Load()
	if ok, bad := load(t, p, 30, 3); ok != 30 {
		t.Fatalf("after: %d of 30 answered; %v", ok, bad)
	}
	if u[2].reqs.Load() < before+30 || u[0].reqs.Load() != r0 {
		t.Errorf("after the config reload set 1 is only %s: it got %d of 30 calls, the removed one %d",
			u[2].uri(), u[2].reqs.Load()-before, u[0].reqs.Load()-r0)
	}
}

func gauges(t *testing.T, p *enginetest.Proxy) map[string]func() float64 {
	t.Helper()
	out := map[string]func() float64{}
	for _, g := range p.E.ModuleGauges() {
		out[g.Name] = g.Value
	}
	return out
}

func rpc(t *testing.T, p *enginetest.Proxy, name string) func([]string) (any, error) {
	t.Helper()
	inst, _ := p.E.Module("dispatcher")
	for _, c := range inst.(engine.Commander).RPC() {
		if c.Name == name {
			return c.Fn
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// flagsOf reads dispatcher.list: URI → FLAGS.
func flagsOf(t *testing.T, p *enginetest.Proxy) map[string]string {
	t.Helper()
	res, err := rpc(t, p, "dispatcher.list")(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range res.(map[string]any)["RECORDS"].([]any) {
		set := r.(map[string]any)["SET"].(map[string]any)
		for _, tg := range set["TARGETS"].([]any) {
			d := tg.(map[string]any)["DEST"].(map[string]any)
			out[d["URI"].(string)] = d["FLAGS"].(string)
		}
	}
	return out
}

// TestPingLatency: with ds_ping_latency_stats = 1, dispatcher.list shows each destination's ping latency
// (LATENCY: AVG, STD, EST, MAX in ms, TIMEOUT) once it answered pings, and counts the timeouts of a silent
// one; without it there is no LATENCY record.
func TestPingLatency(t *testing.T) {
	u := []*uas{newUAS(t), newUAS(t)}
	p := enginetest.Start(t, config("ds_ping_interval = 1\nds_probing_mode = 1\nds_ping_timeout = 300\nds_ping_latency_stats = 1",
		dst(1, u[0].uri(), ""), dst(1, u[1].uri(), "")), script)
	u[1].stop()
	latencyOf := func() map[string]map[string]any {
		res, err := rpc(t, p, "dispatcher.list")(nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]any{}
		for _, r := range res.(map[string]any)["RECORDS"].([]any) {
			for _, tg := range r.(map[string]any)["SET"].(map[string]any)["TARGETS"].([]any) {
				d := tg.(map[string]any)["DEST"].(map[string]any)
				if l, ok := d["LATENCY"].(map[string]any); ok {
					out[d["URI"].(string)] = l
				}
			}
		}
		return out
	}
	eventually(t, 5*time.Second, func() bool {
		l := latencyOf()
		return len(l) == 2 && l[u[0].uri()]["MAX"].(float64) > 0 && l[u[1].uri()]["TIMEOUT"].(int) > 0
	}, "latency of the answering destination and timeouts of the silent one")
	l := latencyOf()
	if a := l[u[0].uri()]; a["AVG"].(float64) <= 0 || a["AVG"].(float64) > 1000 || a["TIMEOUT"].(int) != 0 {
		t.Errorf("answering destination: %v", a)
	}
	if s := l[u[1].uri()]; s["AVG"].(float64) != 0 {
		t.Errorf("silent destination has a latency: %v", s)
	}
}
