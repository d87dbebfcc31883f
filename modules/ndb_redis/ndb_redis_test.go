package ndb_redis_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// evalScript runs redis commands named by the test and answers with their results in headers.
const evalScript = `
function ksr_request_route()
	local rc1 = KSR.ndb_redis.redis_cmd("srv", "SET user:bob sip:bob@10.0.0.2", "r1")
	local rc2 = KSR.ndb_redis.redis_cmd("srv", "GET user:bob", "r2")
	local rc3 = KSR.ndb_redis.redis_cmd("srv", "RPUSH list a b c", "r3")
	local rc4 = KSR.ndb_redis.redis_cmd("srv", "LRANGE list 0 -1", "r4")
	local rc5 = KSR.ndb_redis.redis_cmd("srv", "GET nosuchkey", "r5")
	local rc6 = KSR.ndb_redis.redis_cmd("srv", "INCRBY", "r6")
	local rc7 = KSR.ndb_redis.redis_cmd("nosuch", "PING", "r7")
	KSR.hdr.append_to_reply("X-RC: " .. rc1 .. rc2 .. rc3 .. rc4 .. rc5 .. rc6 .. rc7 .. "\r\n")
	KSR.hdr.append_to_reply("X-R1: " .. KSR.pv.get("$redis(r1=>type)") .. " " .. KSR.pv.get("$redis(r1=>value)") .. "\r\n")
	KSR.hdr.append_to_reply("X-R2: " .. KSR.pv.get("$redis(r2=>type)") .. " " .. KSR.pv.get("$redis(r2=>value)") .. "\r\n")
	KSR.hdr.append_to_reply("X-R3: " .. KSR.pv.get("$redis(r3=>type)") .. " " .. KSR.pv.get("$redis(r3=>value)") .. "\r\n")
	KSR.hdr.append_to_reply("X-R4: " .. KSR.pv.get("$redis(r4=>type)") .. " " .. KSR.pv.get("$redis(r4=>size)") .. " " .. KSR.pv.get("$redis(r4=>value[2])") .. "\r\n")
	KSR.hdr.append_to_reply("X-R5: " .. KSR.pv.get("$redis(r5=>type)") .. "\r\n")
	KSR.hdr.append_to_reply("X-R6: " .. KSR.pv.get("$redis(r6=>type)") .. " " .. KSR.pv.get("$redis(r6=>info)") .. "\r\n")
	KSR.sl.sl_send_reply(200, "OK")
end
`

func header(raw, name string) string {
	for _, l := range strings.Split(raw, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestRedisCmd: commands against a real redis-server, replies read with $redis(name=>...) as Kamailio
// gives them (types 1 string, 2 array, 3 integer, 4 nil, 6 error).
func TestRedisCmd(t *testing.T) {
	r := enginetest.StartRedis(t)
	cfg := "[modules.sl]\n[modules.hdr]\n[modules.ndb_redis]\nserver = [\"name=srv;addr=127.0.0.1;port=" + strings.Split(r.Addr(), ":")[1] + ";db=0\"]\n"
	p := enginetest.Start(t, cfg, evalScript)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:x@example.com"))
	raw := string(c.RecvRaw(3 * time.Second))
	for name, want := range map[string]string{
		"X-RC": "11111" + "1" + "-1", "X-R1": "1 OK", "X-R2": "1 sip:bob@10.0.0.2", "X-R3": "3 3",
		"X-R4": "2 3 c", "X-R5": "4", "X-R6": "6 wrong number of arguments for 'incrby' command",
	} {
		if got := header(raw, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestRedisCmdTimeout: a Redis that accepts connections but never answers costs a command at most
// connect_timeout/cmd_timeout, then -1; the next command fails at once while the server is marked down.
func TestRedisCmdTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	port := strings.Split(l.Addr().String(), ":")[1]
	cfg := "[modules.ndb_redis]\ncmd_timeout = 200\nconnect_timeout = 200\nserver = [\"name=srv;addr=127.0.0.1;port=" + port + "\"]\n"
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	cmd := p.Export(t, "ndb_redis", "redis_cmd").(func(*engine.Msg, string, string, string) int)
	m := enginetest.Msg(t, p, "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n\r\n")
	t0 := time.Now()
	if rc := cmd(m, "srv", "GET k", "g"); rc != -1 {
		t.Errorf("GET on a silent server = %d, want -1", rc)
	}
	if d := time.Since(t0); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("GET gave up after %s, want about 200 ms", d)
	}
	t0 = time.Now()
	if rc := cmd(m, "srv", "GET k", "g"); rc != -1 || time.Since(t0) > 50*time.Millisecond {
		t.Errorf("second GET = %d after %s: want -1 at once while the server is down", rc, time.Since(t0))
	}
}

const asyncScript = `
function ksr_request_route()
	if KSR.is_INVITE() and KSR.siputils.has_totag() < 0 then
		if KSR.ndb_redis.redis_cmd_async("srv", "GET route:" .. KSR.pv.get("$rU"), "ksr_redis_route") == 0 then
			return 1
		end
		KSR.sl.sl_send_reply(500, "no async")
		return 1
	end
	KSR.tm.t_relay()
end

function ksr_redis_route()
	if KSR.pv.get("$redis(ksr_redis_route=>type)") == 1 then
		KSR.pv.sets("$du", KSR.pv.get("$redis(ksr_redis_route=>value)"))
		KSR.tm.t_relay()
	else
		KSR.tm.t_reply(404, "Not routed")
	end
end
`

// TestRedisCmdAsync: redis_cmd_async suspends the transaction and the route it names relays the call to
// the destination Redis holds (needs tm's Suspend/Continue, branch kemicore).
func TestRedisCmdAsync(t *testing.T) {
	r := enginetest.StartRedis(t)
	uas := enginetest.StartUAS(t, false, nil)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Do(context.Background(), rc.B().Set().Key("route:bob").Value("sip:"+uas.Addr.String()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cfg := "[modules.tm]\n[modules.sl]\n[modules.siputils]\n[modules.ndb_redis]\nserver = [\"name=srv;addr=127.0.0.1;port=" +
		strings.Split(r.Addr(), ":")[1] + "\"]\n"
	p := enginetest.Start(t, cfg, asyncScript)
	inst, _ := p.E.Module("tm")
	if _, ok := inst.(interface {
		Suspend(*engine.Msg) (uint32, uint32, error)
	}); !ok {
		t.Skip("tm has no Suspend/Continue (tmx t_suspend/t_continue, branch kemicore) in this tree")
	}
	c := p.UDPClient(t)
	for user, want := range map[string]string{"bob": "SIP/2.0 200", "carol": "SIP/2.0 404 Not routed"} {
		c.Send(c.Request("INVITE", "sip:"+user+"@example.com", "Contact: <sip:alice@"+c.Addr.String()+">"))
		if got := string(c.RecvFinal(5 * time.Second)); !strings.HasPrefix(got, want) {
			t.Errorf("%s: final reply %q, want %q", user, strings.SplitN(got, "\r\n", 2)[0], want)
		}
	}
}
