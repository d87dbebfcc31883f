package usrloc_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// e2eScript: REGISTER is saved; OPTIONS answers whether the R-URI is registered (a probe that relays
// nothing); other requests are looked up and relayed, 404 when not found.
const e2eScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_REGISTER() then KSR.registrar.save("location", 0) return 1 end
	if KSR.is_OPTIONS() then
		if KSR.registrar.registered("location") > 0 then KSR.sl.sl_send_reply(200, "Registered")
		else KSR.sl.sl_send_reply(404, "Not Registered") end
		return 1
	end
	local rc = KSR.registrar.lookup("location")
	if rc < 0 then KSR.sl.sl_send_reply(404, "Not Found") return 1 end
	KSR.tm.t_relay()
end
`

func e2eRedis(t *testing.T) (url string, kill func()) {
	t.Helper()
	r := enginetest.StartRedis(t)
	return r.URL(), r.Kill
}

func e2eNode(t *testing.T, redisURL string) *enginetest.Proxy {
	t.Helper()
	cfg := fmt.Sprintf("[modules.sl]\n[modules.tm]\n[modules.registrar]\n[modules.usrloc]\nbackend = \"redis\"\n"+
		"redis_url = %q\nredis_prefix = \"e2e:\"\nredis_timeout = 1000\n", redisURL)
	return enginetest.Start(t, cfg, e2eScript)
}

func e2eStatus(raw []byte) string {
	line, _, _ := strings.Cut(string(raw), "\r\n")
	return strings.TrimPrefix(line, "SIP/2.0 ")
}

// e2eUAS is bob's phone: it answers every INVITE 486 (an ACK it does not answer).
func e2eUAS(t *testing.T) *enginetest.UAS {
	return enginetest.StartUAS(t, false, func(string) int { return 486 })
}

// expectInvite waits for the INVITE the UAS answered and returns it (skipping the ACKs of earlier ones).
func expectInvite(t *testing.T, uas *enginetest.UAS) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		req := uas.Next(t, time.Until(deadline)).Raw
		if strings.HasPrefix(req, "INVITE ") {
			return req
		}
	}
}

func e2eRegister(t *testing.T, c *enginetest.Client, contact string, expires int) string {
	t.Helper()
	c.Send(c.Request("REGISTER", "sip:bob@example.com", "Contact: <"+contact+">",
		"Expires: "+strconv.Itoa(expires)))
	return e2eStatus(c.RecvRaw(3 * time.Second))
}

// e2eCall sends an INVITE for bob through c and returns the final status, with the UAS answering 486 if
// the INVITE reaches it.
func e2eCall(t *testing.T, c *enginetest.Client, uas *enginetest.UAS, wantRelayed bool) string {
	t.Helper()
	c.Send(c.Request("INVITE", "sip:bob@example.com"))
	if wantRelayed {
		req := expectInvite(t, uas)
		if line, _, _ := strings.Cut(req, "\r\n"); !strings.Contains(line, "sip:bob@"+uas.Addr.String()) {
			t.Fatalf("INVITE reached the UAS with R-URI %q, want the registered contact", line)
		}
	}
	return e2eStatus(c.RecvFinal(3 * time.Second))
}

// Two siplua processes' worth of engines share one Redis: a registration through one is routed by the
// other, an unregistration through the other is seen by the first within a second, and a node started
// later finds what was registered before.
func TestRedisTwoNodesE2E(t *testing.T) {
	url, killRedis := e2eRedis(t)
	uas := e2eUAS(t)
	contact := "sip:bob@" + uas.Addr.String()

	t.Run("two nodes", func(t *testing.T) {
		a, b := e2eNode(t, url), e2eNode(t, url)
		ca, cb := a.UDPClient(t), b.UDPClient(t)
		// B looks bob up first (and caches "not registered"), then bob registers through A.
		cb.Send(cb.Request("OPTIONS", "sip:bob@example.com"))
		if st := e2eStatus(cb.RecvRaw(3 * time.Second)); !strings.HasPrefix(st, "404") {
			t.Fatalf("OPTIONS via B before REGISTER: %s, want 404", st)
		}
		if st := e2eRegister(t, ca, contact, 300); !strings.HasPrefix(st, "200") {
			t.Fatalf("REGISTER via A: %s", st)
		}
		e2eWaitRegistered(t, cb, "B", true)
		if st := e2eCall(t, cb, uas, true); !strings.HasPrefix(st, "486") {
			t.Fatalf("INVITE via B: final %s, want the UAS's 486", st)
		}
		// A has bob cached now; bob unregisters through B.
		e2eWaitRegistered(t, ca, "A", true)
		if st := e2eRegister(t, cb, contact, 0); !strings.HasPrefix(st, "200") {
			t.Fatalf("unREGISTER via B: %s", st)
		}
		e2eWaitRegistered(t, ca, "A", false)
		if st := e2eCall(t, ca, uas, false); !strings.HasPrefix(st, "404") {
			t.Fatalf("INVITE via A after unregister via B: %s, want 404", st)
		}
		// Registered again through A before both nodes stop.
		if st := e2eRegister(t, ca, contact, 300); !strings.HasPrefix(st, "200") {
			t.Fatalf("second REGISTER via A: %s", st)
		}
	})

	t.Run("a node started later", func(t *testing.T) {
		c := e2eNode(t, url)
		cc := c.UDPClient(t)
		if st := e2eCall(t, cc, uas, true); !strings.HasPrefix(st, "486") {
			t.Fatalf("INVITE via a new node: final %s, want the UAS's 486", st)
		}
		// Redis gone: a REGISTER is answered 500 quickly, the INVITE is still routed from the cache.
		killRedis()
		start := time.Now()
		if st := e2eRegister(t, cc, contact, 300); !strings.HasPrefix(st, "500") {
			t.Fatalf("REGISTER with Redis down: %s, want 500", st)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("REGISTER with Redis down took %v", d)
		}
		if st := e2eCall(t, cc, uas, true); !strings.HasPrefix(st, "486") {
			t.Fatalf("INVITE with Redis down: final %s, want the UAS's 486 (cached binding)", st)
		}
	})
}

// e2eWaitRegistered polls with OPTIONS until the node says bob is (or is not) registered, for at most 1 s.
func e2eWaitRegistered(t *testing.T, c *enginetest.Client, node string, want bool) {
	t.Helper()
	wantSt := map[bool]string{true: "200", false: "404"}[want]
	deadline := time.Now().Add(time.Second)
	for {
		c.Send(c.Request("OPTIONS", "sip:bob@example.com"))
		st := e2eStatus(c.RecvRaw(3 * time.Second))
		if strings.HasPrefix(st, wantSt) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: OPTIONS answers %q, not %s within 1 s", node, st, wantSt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The S3 benchmark's script on two nodes sharing Redis: SIPp registers users through A, a SIPp UAC calls
// each through B, which finds the SIPp UAS by lookup("location"); every call must complete.
func TestRedisSIPpRegisterViaACallViaB(t *testing.T) {
	url, _ := e2eRedis(t)
	cfg := fmt.Sprintf("[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.maxfwd]\n[modules.siputils]\n[modules.registrar]\n"+
		"[modules.usrloc]\nbackend = \"redis\"\nredis_url = %q\nredis_prefix = \"s3:\"\nredis_timeout = 2000\n", url)
	script := enginetest.S3Script(t)
	a, b := enginetest.Start(t, cfg, script), enginetest.Start(t, cfg, script)
	enginetest.RegisterAndCall(t, a, b, 20)
}

// The ul.* control commands work on the Redis backend (they walk it with Range, write with Update).
func TestRedisCommands(t *testing.T) {
	url, _ := e2eRedis(t)
	_, sock := startUL(t, fmt.Sprintf("backend = \"redis\"\nredis_url = %q\n", url))
	for _, step := range []struct {
		method, want string
		args         []string
	}{
		{"ul.add", `"ok"`, []string{"location", "alice@example.org", "sip:alice@10.0.0.1", "600", "0.5", "<sip:edge;lr>", "0", "64", "0"}},
		{"ul.add", `"ok"`, []string{"bob@example.org", "sip:bob@10.0.0.2"}},
		{"ul.lookup", `"sip:alice@10.0.0.1"`, []string{"alice@example.org"}},
		{"ul.dump", `{"Domains":[{"AoRs":[{"AoR":"alice@example.org"},{"AoR":"bob@example.org"}],"Domain":"location"`, []string{"brief"}},
		{"ul.rm", `{"AoR":"alice@example.org","Removed":true}`, []string{"alice@example.org"}},
		{"ul.lookup", "error 500: AOR not found", []string{"alice@example.org"}},
		{"ul.rm_contact", `"Removed":true`, []string{"location", "bob@example.org", "sip:bob@10.0.0.2"}},
		{"ul.dump", `"AoRs":[]`, nil},
	} {
		if got := call(t, sock, step.method, step.args...); !strings.Contains(got, step.want) {
			t.Fatalf("%s %v:\ngot  %s\nwant it to contain %s", step.method, step.args, got, step.want)
		}
	}
}
