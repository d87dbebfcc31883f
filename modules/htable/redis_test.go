package htable_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

func redisTables(url string) string {
	return fmt.Sprintf(`
[modules.htable.tables.shared]
backend = "redis"
redis_url = %[1]q
initval = 0
[modules.htable.tables.plain]
backend = "redis"
redis_url = %[1]q
redis_prefix = "test:"
[modules.htable.tables.exp]
backend = "redis"
redis_url = %[1]q
autoexpire = 1
[modules.htable.tables.keep]
backend = "redis"
redis_url = %[1]q
autoexpire = 2
updateexpire = false
`, url)
}

// TestRedisTwoEngines: two siplua processes share redis tables: what one writes the other reads,
// increments from both are atomic, Redis expires items, and a third engine started later sees them all.
func TestRedisTwoEngines(t *testing.T) {
	r := enginetest.StartRedis(t)
	cfg := "redis_timeout = 2000\n" + redisTables(r.URL()) // generous: -race on a shared machine
	p1, p2 := start(t, cfg), start(t, cfg)
	c1, c2 := p1.UDPClient(t), p2.UDPClient(t)
	run(t, c1, []step{
		{`KSR.htable.sht_sets("plain", "a", "x") + KSR.htable.sht_seti("plain", "n", 5)`, "number:2"},
		{`KSR.htable.sht_sets("plain", "s5", "5")`, "number:1"},
		{`KSR.htable.sht_setxs("plain", "t", "v", 100)`, "number:1"},
		{`KSR.htable.sht_seti("exp", "e", 1)`, "number:1"},
		{`KSR.htable.sht_seti("keep", "k", 1)`, "number:1"},
	})
	run(t, c2, []step{
		{`KSR.htable.sht_get("plain", "a")`, "string:x"},
		{`KSR.htable.sht_get("plain", "s5")`, "string:5"},
		{`KSR.htable.sht_get("plain", "missing")`, "nil:nil"},
		{`KSR.htable.sht_get("shared", "missing")`, "number:0"},
		{`KSR.htable.sht_is_null("plain", "a")`, "number:-1"},
		{`KSR.htable.sht_inc("plain", "n")`, "number:6"},
		{`KSR.htable.sht_inc("plain", "a")`, "number:-255"},
		{`KSR.htable.sht_inc("plain", "missing")`, "number:-255"},
		{`KSR.pv.get("$shtex(plain=>t)")`, "number:100"},
		{`KSR.pv.get("$shtex(exp=>e)")`, "number:1"},
		{`KSR.pv.get("$shtex(plain=>a)")`, "number:0"},
		{`KSR.htable.sht_match_name("plain", "sw", "s")`, "number:1"},
		{`KSR.htable.sht_match_str_value("plain", "eq", "x")`, "number:1"},
		{`KSR.pv.sets("$sht(plain=>pv)", "val")`, "boolean:true"},
	})
	run(t, c1, []step{
		{`KSR.htable.sht_get("plain", "n")`, "number:6"},
		{`KSR.pv.get("$sht(plain=>pv)")`, "string:val"},
		{iterate, "string:a=x,n=6,pv=val,s5=5,t=v"},
	})

	// Increments from both engines, several sockets each, at once.
	const each = 60
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, p := range []*enginetest.Proxy{p1, p2, p1, p2} {
		c := p.UDPClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v := c.Eval("MESSAGE", "sip:inc@127.0.0.1", nil, `KSR.htable.sht_inc("shared", "hits")`)[0]
				mu.Lock()
				seen[v]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := 1; i <= 4*each; i++ {
		if k := "number:" + strconv.Itoa(i); seen[k] != 1 {
			t.Errorf("value %d returned %d times", i, seen[k])
		}
	}

	time.Sleep(1200 * time.Millisecond)
	run(t, c1, []step{
		{`KSR.htable.sht_get("exp", "e")`, "nil:nil"},
		{`KSR.htable.sht_sets("keep", "k", "updated")`, "number:1"}, // updateexpire = false: keeps its TTL
	})
	time.Sleep(1000 * time.Millisecond)
	run(t, c2, []step{{`KSR.htable.sht_get("keep", "k")`, "nil:nil"}})

	// A third engine, started after the others wrote, sees the tables.
	c3 := start(t, cfg).UDPClient(t)
	run(t, c3, []step{
		{`KSR.htable.sht_get("shared", "hits")`, "number:" + strconv.Itoa(4*each)},
		{`KSR.htable.sht_rm_name_re("plain", "^s")`, "number:1"},
		{`KSR.htable.sht_get("plain", "s5")`, "nil:nil"},
		{`KSR.htable.sht_reset("plain")`, "number:0"},
	})
	run(t, c1, []step{{iterate, "string:"}})
	// Other tables (another prefix) were not touched by the reset.
	run(t, c2, []step{{`KSR.htable.sht_get("shared", "hits")`, "number:" + strconv.Itoa(4*each)}})
}

// TestRedisDown: while Redis is unreachable a read answers at once as a missing item and a write fails
// (-1), within the route budget; when Redis is back the table works again.
func TestRedisDown(t *testing.T) {
	r := enginetest.StartRedis(t)
	p := start(t, redisTables(r.URL()))
	c := p.UDPClient(t)
	run(t, c, []step{{`KSR.htable.sht_sets("plain", "a", "x")`, "number:1"}})
	r.Kill()
	t0 := time.Now()
	run(t, c, []step{
		{`KSR.htable.sht_get("plain", "a")`, "nil:nil"},
		{`KSR.htable.sht_sets("plain", "a", "y")`, "number:-1"},
		{`KSR.htable.sht_inc("shared", "n")`, "number:-255"},
		{`KSR.htable.sht_get("shared", "n")`, "number:0"},
	})
	if d := time.Since(t0); d > time.Second {
		t.Errorf("4 requests with Redis down took %v: calls are not bounded by redis_timeout", d)
	}
	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := c.Eval("OPTIONS", "sip:x@127.0.0.1", nil, `KSR.htable.sht_sets("plain", "a", "z")`)[0]; got == "number:1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the table did not recover after Redis came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	run(t, c, []step{{`KSR.htable.sht_get("plain", "a")`, "string:z"}})
}

func TestRedisCommands(t *testing.T) {
	r := enginetest.StartRedis(t)
	p := start(t, redisTables(r.URL()))
	sock := startCtl(t, p)
	for _, tc := range []struct {
		method string
		args   []string
		want   string
	}{
		{"htable.sets", []string{"plain", "a", "hello"}, `"ok"`},
		{"htable.seti", []string{"plain", "n", "12"}, `"ok"`},
		{"htable.get", []string{"plain", "a"}, `{"item":{"expire":"NEVER","name":"a","value":"hello"}}`},
		{"htable.dump", []string{"plain"}, `[{"expire":"NEVER","name":"a","value":"hello"},{"expire":"NEVER","name":"n","value":12}]`},
		{"htable.delete", []string{"plain", "a"}, `"ok"`},
		{"htable.get", []string{"plain", "a"}, "error 500: Key name doesn't exist in htable."},
		{"htable.reload", []string{"plain"}, `"ok"`},
		{"htable.flush", []string{"plain"}, `"ok"`},
		{"htable.dump", []string{"plain"}, `[]`},
	} {
		if got := call(t, sock, tc.method, tc.args...); got != tc.want {
			t.Errorf("%s %v:\n got %s\nwant %s", tc.method, tc.args, got, tc.want)
		}
	}
}
