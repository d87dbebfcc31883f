package authdb_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/rueidis"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/auth/authtest"
)

// client registers user@127.0.0.1 against the proxy, answering its challenge.
type client struct {
	t  *testing.T
	c  *enginetest.Client
	nc int
}

func (c *client) send(method, user, domain string, extra ...string) *sip.Response {
	req := c.c.Request(method, "sip:"+domain, extra...)
	req = strings.Replace(req, "To: <sip:"+domain+">", "To: <sip:"+user+"@"+domain+">", 1)
	req = regexp.MustCompile(`From: <sip:alice@[^>]*>`).ReplaceAllString(req, "From: <sip:"+user+"@"+domain+">")
	c.c.Send(req)
	return c.c.RecvResponse(3 * time.Second)
}

// login answers the challenge of the given algorithm with username/password and returns the final reply.
func (c *client) login(method, user, authUser, pass, alg string) *sip.Response {
	c.t.Helper()
	r := c.send(method, user, "127.0.0.1")
	hname := "WWW-Authenticate"
	cname := "Authorization"
	if r.StatusCode == 407 {
		hname, cname = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var ch *authtest.Challenge
	for _, x := range authtest.Challenges(c.t, r, hname) {
		if x.Alg == alg {
			ch = &x
		}
	}
	if ch == nil {
		c.t.Fatalf("no %s challenge in %d reply:\n%s", alg, r.StatusCode, r.String())
	}
	c.nc++
	k := authtest.Creds{User: authUser, Pass: pass, Method: method, URI: "sip:127.0.0.1", NC: fmt.Sprintf("%08x", c.nc), CNonce: "cn0"}
	cred := cname + ": " + k.Answer(*ch)
	return c.send(method, user, "127.0.0.1", cred)
}

// loginWithin logs user in (REGISTER, user = auth user) again every interval until the answer is rc 1,
// failing the test with what when it is not within d (a change in Redis reaching the module).
func (c *client) loginWithin(d, interval time.Duration, user, pass, alg, what string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := c.login("REGISTER", user, user, pass, alg)
		if rc(r) == "1" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: rc=%s", what, rc(r))
		}
		time.Sleep(interval)
	}
}

func rc(r *sip.Response) string {
	if hd := r.GetHeader("X-RC"); hd != nil {
		return hd.Value()
	}
	return "none"
}

const script = `
function ksr_request_route()
	local rc = KSR.auth_db.auth_check("", "subscriber", 1)
	KSR.hdr.append_to_reply("X-RC: " .. rc .. "\r\n")
	if rc == 1 then KSR.sl.sl_send_reply(200, "OK"); return end
	if rc == -5 or rc == -4 then KSR.auth.auth_challenge("", 1); return end
	KSR.sl.sl_send_reply(403, "Forbidden")
end`

func TestUsersFile(t *testing.T) {
	csv := "# user file\nuser,domain,password,ha1,ha1_sha256\n" +
		"alice,127.0.0.1,secret,,\n" +
		"bob,127.0.0.1,," + authtest.HA1("MD5", "bob", "127.0.0.1", "bobpw") + "," + authtest.HA1("SHA-256", "bob", "127.0.0.1", "bobpw") + "\n" +
		"carol,127.0.0.1,," + authtest.HA1("MD5", "carol", "127.0.0.1", "carolpw") + ",\n"
	toml := "[[users]]\nuser = \"alice\"\ndomain = \"127.0.0.1\"\npassword = \"secret\"\n\n" +
		"[[users]]\nuser = \"bob\"\ndomain = \"127.0.0.1\"\nha1 = \"" + authtest.HA1("MD5", "bob", "127.0.0.1", "bobpw") + "\"\n" +
		"ha1_sha256 = \"" + authtest.HA1("SHA-256", "bob", "127.0.0.1", "bobpw") + "\"\n\n" +
		"[[users]]\nuser = \"carol\"\ndomain = \"127.0.0.1\"\nha1 = \"" + strings.ToUpper(authtest.HA1("MD5", "carol", "127.0.0.1", "carolpw")) + "\"\n"
	for _, f := range []struct{ name, text string }{{"users.csv", csv}, {"users.toml", toml}} {
		for _, useDomain := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/use_domain=%v", f.name, useDomain), func(t *testing.T) {
				p := enginetest.StartFiles(t, fmt.Sprintf("[modules.sl]\n[modules.auth]\n[modules.auth_db]\nusers_file = %q\nuse_domain = %v\n", f.name, useDomain),
					map[string]string{"script.lua": script, f.name: f.text})
				c := &client{t: t, c: p.UDPClient(t)}
				for _, tc := range []struct {
					user, authUser, pass, alg string
					code                      int
					rc                        string
				}{
					{"alice", "alice", "secret", "SHA-256", 200, "1"},
					{"alice", "alice", "secret", "MD5", 200, "1"},
					{"alice", "alice", "wrong", "MD5", 403, "-2"},
					{"bob", "bob", "bobpw", "SHA-256", 200, "1"}, // ha1_sha256
					{"bob", "bob", "bobpw", "MD5", 200, "1"},     // ha1
					{"bob", "bob", "alicepw", "MD5", 403, "-2"},
					{"carol", "carol", "carolpw", "MD5", 200, "1"},      // ha1 in upper case
					{"carol", "carol", "carolpw", "SHA-256", 403, "-1"}, // no SHA-256 secret for carol
					{"dave", "dave", "x", "MD5", 403, "-3"},
					{"alice", "bob", "bobpw", "MD5", 403, "-8"}, // bob registering alice
				} {
					r := c.login("REGISTER", tc.user, tc.authUser, tc.pass, tc.alg)
					if r.StatusCode != tc.code || rc(r) != tc.rc {
						t.Errorf("%s as %s/%s %s: got %d rc=%s, want %d rc=%s", tc.user, tc.authUser, tc.pass, tc.alg, r.StatusCode, rc(r), tc.code, tc.rc)
					}
				}
			})
		}
	}
}

func TestUseDomain(t *testing.T) {
	csv := "user,domain,password\nalice,example.org,secret\n"
	for _, tc := range []struct {
		useDomain bool
		rc        string
	}{{false, "1"}, {true, "-3"}} { // the realm 127.0.0.1 is the lookup domain
		p := enginetest.StartFiles(t, fmt.Sprintf("[modules.sl]\n[modules.auth]\n[modules.auth_db]\nusers_file = \"u.csv\"\nuse_domain = %v\n", tc.useDomain),
			map[string]string{"script.lua": script, "u.csv": csv})
		c := &client{t: t, c: p.UDPClient(t)}
		if r := c.login("REGISTER", "alice", "alice", "secret", "MD5"); rc(r) != tc.rc {
			t.Errorf("use_domain=%v: rc=%s, want %s", tc.useDomain, rc(r), tc.rc)
		}
	}
}

func TestProxyAuthorize(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.sl]\n[modules.auth]\n[modules.auth_db]\nusers_file = \"u.csv\"\n", map[string]string{"script.lua": `
function ksr_request_route()
	local rc = KSR.auth_db.proxy_authorize("", "subscriber")
	KSR.hdr.append_to_reply("X-RC: " .. rc .. "\r\n")
	if rc < 0 then KSR.auth.proxy_challenge("", 1); return end
	KSR.sl.sl_send_reply(200, "OK")
end`, "u.csv": "user,password\nalice,secret\n"})
	c := &client{t: t, c: p.UDPClient(t)}
	r := c.login("MESSAGE", "alice", "alice", "secret", "SHA-256")
	if r.StatusCode != 200 || rc(r) != "1" {
		t.Fatalf("MESSAGE: got %d rc=%s", r.StatusCode, rc(r))
	}
}

func TestUsersFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"u.csv", "user,pass\nalice,x\n", `column "pass"`},
		{"u.csv", "domain,password\nexample.org,x\n", "user column"},
		{"u.csv", "user,password\nalice\n", "u.csv:2: expected 2 fields"},
		{"u.csv", "user,ha1\nalice,abc\n", "ha1: expected 32 hex digits"},
		{"u.csv", "user,password\nalice,\n", "expected password, ha1 or ha1_sha256"},
		{"u.csv", "user,domain,password\nalice,a,x\nalice,A,y\n", "listed twice"},
		{"u.toml", "[[users]]\nuser = \"alice\"\npasswd = \"x\"\n", `unknown key "users.passwd"`},
		{"u.toml", "[[users]\n", "u.toml:2: TOML syntax error"},
		{"u.toml", "[[users]]\nuser = \"a\"\npassword = s3cr3t\n", "u.toml:3: TOML syntax error"},
		{"u.json", "{}", "expected a .csv or .toml file"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, tc.name), []byte(tc.text), 0o644)
		os.WriteFile(filepath.Join(dir, "s.lua"), []byte("function ksr_request_route() end"), 0o644)
		cfgText := fmt.Sprintf("[lua]\nscript = \"s.lua\"\n[core]\nlisten = [\"udp:127.0.0.1:0\"]\n[modules.auth]\n[modules.auth_db]\nusers_file = %q\n", tc.name)
		os.WriteFile(filepath.Join(dir, "c.toml"), []byte(cfgText), 0o644)
		err := startErr(t, filepath.Join(dir, "c.toml"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want it to say %q", tc.name, tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
}

// startErr loads a configuration and starts an engine on it, returning the error of either step.
func startErr(t *testing.T, path string) error {
	cfg, err := engine.LoadConfigFile(path)
	if err != nil {
		return err
	}
	compile := func(*engine.Config) (engine.Script, error) { return nil, fmt.Errorf("not compiled in this test") }
	e, err := engine.New(cfg, compile, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "not compiled") {
		return err
	}
	_ = e
	return nil
}

func TestNeedsAuthModule(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.lua"), []byte("function ksr_request_route() end"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.toml"), []byte("[lua]\nscript = \"s.lua\"\n[modules.auth_db]\n"), 0o644)
	err := startErr(t, filepath.Join(dir, "c.toml"))
	if err == nil || !strings.Contains(err.Error(), "c.toml:3: [modules.auth_db]: needs module auth: add a [modules.auth] table") {
		t.Fatalf("auth_db without auth: %v", err)
	}
}

func TestReload(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.sl]\n[modules.auth]\n[modules.auth_db]\nusers_file = \"u.csv\"\n",
		map[string]string{"script.lua": script, "u.csv": "user,password\nalice,secret\n"})
	c := &client{t: t, c: p.UDPClient(t)}
	if r := c.login("REGISTER", "bob", "bob", "bobpw", "MD5"); rc(r) != "-3" {
		t.Fatalf("bob before reload: rc=%s", rc(r))
	}
	p.WriteFile(t, "u.csv", "user,password\nalice,secret\nbob,bobpw\n")
	if r := c.login("REGISTER", "bob", "bob", "bobpw", "MD5"); rc(r) != "-3" {
		t.Fatalf("bob after the file changed, before a reload: rc=%s", rc(r))
	}
	// siplua ctl reload: the configuration did not change, the users file is read again
	if _, err := p.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := c.login("REGISTER", "bob", "bob", "bobpw", "MD5"); rc(r) != "1" {
		t.Fatalf("bob after reload: rc=%s", rc(r))
	}
	// a broken file fails the reload and the loaded users keep serving
	p.WriteFile(t, "u.csv", "user,password\nalice\n")
	if _, err := p.Reload(); err == nil || !strings.Contains(err.Error(), "expected 2 fields") {
		t.Fatalf("reload with a broken users file: %v", err)
	}
	if r := c.login("REGISTER", "bob", "bob", "bobpw", "MD5"); rc(r) != "1" {
		t.Fatalf("bob after a failed reload: rc=%s", rc(r))
	}
	// ctl auth_db.reload
	p.WriteFile(t, "u.csv", "user,password\ncarol,carolpw\n")
	inst, _ := p.E.Module("auth_db")
	cmd := inst.(engine.Commander).RPC()[0]
	if cmd.Name != "auth_db.reload" {
		t.Fatalf("command %s", cmd.Name)
	}
	res, err := cmd.Fn(nil)
	if err != nil || res.(map[string]any)["users"] != 1 {
		t.Fatalf("auth_db.reload: %v %v", res, err)
	}
	if r := c.login("REGISTER", "bob", "bob", "bobpw", "MD5"); rc(r) != "-3" {
		t.Fatalf("bob after auth_db.reload removed him: rc=%s", rc(r))
	}
	if r := c.login("REGISTER", "carol", "carol", "carolpw", "SHA-256"); rc(r) != "1" {
		t.Fatalf("carol after auth_db.reload: rc=%s", rc(r))
	}
}

func TestIsSubscriber(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.auth]\n[modules.auth_db]\nusers_file = \"u.csv\"\n",
		map[string]string{"script.lua": "function ksr_request_route() end", "u.csv": "user,domain,password\nalice,example.org,x\n"})
	fn := p.Export(t, "auth_db", "is_subscriber")
	m := enginetest.Msg(t, p, "OPTIONS sip:x SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\nFrom: <sip:a@b>;tag=1\nTo: <sip:x>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	for _, tc := range []struct {
		uri   string
		flags int
		want  string
	}{
		{"sip:alice@example.org", 1, "number:1"},
		{"sip:alice@other.org", 0, "number:1"},
		{"sip:alice@other.org", 1, "number:-2"},
		{"sip:bob@example.org", 3, "number:-2"},
		{"not a uri", 0, "number:-1"},
	} {
		if got := enginetest.Call(t, fn, m, tc.uri, "subscriber", tc.flags); got != tc.want {
			t.Errorf("is_subscriber(%s, %d) = %s, want %s", tc.uri, tc.flags, got, tc.want)
		}
	}
}

// startRedis runs a real redis-server on a free port in a temp dir until the test ends; its host:port.
func startRedis(t *testing.T) string { return enginetest.StartRedis(t).Addr() }

func TestRedis(t *testing.T) {
	addr := startRedis(t)
	rc0, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc0.Close()
	ctx := context.Background()
	set := func(key string, kv ...string) {
		if err := rc0.Do(ctx, rc0.B().Hset().Key(key).FieldValue().FieldValue(kv[0], kv[1]).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	set("sub:alice@127.0.0.1", "password", "secret")
	set("sub:bob@127.0.0.1", "ha1", authtest.HA1("MD5", "bob", "127.0.0.1", "bobpw"))
	// the users file comes first; Redis is the second source
	p := enginetest.StartFiles(t, fmt.Sprintf("[modules.sl]\n[modules.auth]\n[modules.auth_db]\nusers_file = \"u.csv\"\nuse_domain = true\n"+
		"redis_url = \"redis://%s/0\"\nredis_prefix = \"sub:\"\n", addr),
		map[string]string{"script.lua": script, "u.csv": "user,domain,password\ncarol,127.0.0.1,carolpw\n"})
	c := &client{t: t, c: p.UDPClient(t)}
	for _, tc := range []struct{ user, pass, alg, rc string }{
		{"alice", "secret", "SHA-256", "1"},
		{"alice", "secret", "MD5", "1"},
		{"alice", "nope", "MD5", "-2"},
		{"bob", "bobpw", "MD5", "1"},
		{"carol", "carolpw", "MD5", "1"},
		{"dave", "x", "MD5", "-3"},
	} {
		if r := c.login("REGISTER", tc.user, tc.user, tc.pass, tc.alg); rc(r) != tc.rc {
			t.Errorf("%s/%s %s: rc=%s, want %s", tc.user, tc.pass, tc.alg, rc(r), tc.rc)
		}
	}
	// a change in Redis is seen at once, cached answers included (server-assisted invalidation)
	set("sub:alice@127.0.0.1", "password", "changed")
	c.loginWithin(2*time.Second, 50*time.Millisecond, "alice", "changed", "MD5", "new password in Redis not used")
	// a user added after a miss is seen at once too (the miss was cached, and invalidated)
	set("sub:dave@127.0.0.1", "password", "davepw")
	c.loginWithin(2*time.Second, 50*time.Millisecond, "dave", "davepw", "SHA-256", "user added to Redis after a miss not found")
	// Redis gone: the users file still answers, a Redis user is a source error (-1), within the timeout
	rc0.Do(ctx, rc0.B().Arbitrary("SHUTDOWN", "NOSAVE").Build())
	time.Sleep(100 * time.Millisecond)
	if r := c.login("REGISTER", "carol", "carol", "carolpw", "MD5"); rc(r) != "1" {
		t.Errorf("file user with Redis down: rc=%s", rc(r))
	}
	start := time.Now()
	if r := c.login("REGISTER", "erin", "erin", "x", "MD5"); rc(r) != "-1" {
		t.Errorf("Redis user with Redis down: rc=%s, want -1", rc(r))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a lookup with Redis down took %s", d)
	}
}

// TestRedisLater: Redis not running at start: lookups fail (-1) until it comes, then work.
func TestRedisLater(t *testing.T) {
	redis := enginetest.NewRedis(t)
	p := enginetest.StartFiles(t, fmt.Sprintf("[modules.sl]\n[modules.auth]\n[modules.auth_db]\nredis_url = \"redis://127.0.0.1:%d\"\n", redis.Port),
		map[string]string{"script.lua": script})
	c := &client{t: t, c: p.UDPClient(t)}
	if r := c.login("REGISTER", "alice", "alice", "secret", "MD5"); rc(r) != "-1" {
		t.Fatalf("Redis down: rc=%s, want -1", rc(r))
	}
	redis.Start()
	addr := redis.Addr()
	rc0, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc0.Close()
	if err := rc0.Do(context.Background(), rc0.B().Hset().Key("subscriber:alice").FieldValue().FieldValue("password", "secret").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	c.loginWithin(6*time.Second, 200*time.Millisecond, "alice", "secret", "MD5", "Redis came up but alice is still refused")
}

// TestReadmeExample runs the README example (stateful, auth_check with identity check, consume_credentials).
func TestReadmeExample(t *testing.T) {
	p := enginetest.StartFiles(t, "[modules.sl]\n[modules.tm]\n[modules.auth]\nsecret = \"a long random string shared by all siplua nodes\"\n"+
		"[modules.auth_db]\nusers_file = \"users.csv\"\n", map[string]string{"users.csv": "# users.csv: a header line names the columns\n" +
		"user,domain,password,ha1,ha1_sha256\nalice,127.0.0.1,secret,,\nbob,127.0.0.1,," + authtest.HA1("MD5", "bob", "127.0.0.1", "bobpw") + ",\n",
		"script.lua": `
function ksr_request_route()
	if KSR.tm.t_newtran() <= 0 then return end       -- retransmissions are answered by the transaction
	local rc = KSR.auth_db.auth_check("", "subscriber", 1)  -- "" = To host for REGISTER, From host otherwise
	if rc == -2 then KSR.tm.t_reply(403, "Forbidden"); return end
	if rc < 0 then KSR.auth.auth_challenge("", 1); return end  -- 401 for REGISTER, 407 otherwise
	KSR.auth.consume_credentials()
	KSR.tm.t_reply(200, "OK")
end`})
	c := &client{t: t, c: p.UDPClient(t)}
	for _, tc := range []struct {
		method, user, pass, alg string
		code                    int
	}{
		{"REGISTER", "alice", "secret", "SHA-256", 200},
		{"REGISTER", "bob", "bobpw", "MD5", 200},
		{"REGISTER", "alice", "nope", "MD5", 403},
		{"MESSAGE", "alice", "secret", "SHA-256", 200},
	} {
		if r := c.login(tc.method, tc.user, tc.user, tc.pass, tc.alg); r.StatusCode != tc.code {
			t.Errorf("%s %s/%s %s: got %d, want %d", tc.method, tc.user, tc.pass, tc.alg, r.StatusCode, tc.code)
		}
	}
}
