package routetest

import (
	"bytes"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

// TestNoGoroutineLeak: a test's engine stops its modules (timers, goroutines) when the test ends, so a
// file of many tests does not pile them up.
func TestNoGoroutineLeak(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"loadbalancer.toml", "loadbalancer.lua", "dispatcher.list"} {
		data, err := os.ReadFile("../../scripts/examples/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	test := `function test_call()
	local res = siptest.run(siptest.request{method = "INVITE", from = "sip:a@example.com", ruri = "sip:s@127.0.0.1"})
	siptest.ok(res.relay)
end
`
	if err := os.WriteFile(dir+"/loadbalancer_test.lua", []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := Options{Out: &out, Load: func() (*engine.Config, error) { return engine.LoadConfigFile(dir + "/loadbalancer.toml") }}
	run := func() {
		out.Reset()
		if sum, err := Run(o); err != nil || sum.Failed > 0 {
			t.Fatalf("%v %+v\n%s", err, sum, out.String())
		}
	}
	run()
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 20 {
		run()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after 20 test runs, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
