package main

// Kamailio's own kamailio-basic-kemi-lua.lua, read from the installed Debian package (never copied into this
// repository), run unmodified by siplua with scripts/examples/kemi-basic.toml: `siplua -c` accepts it,
// phones register with digest authentication and call each other through it (SIPp), a call is cancelled, an
// OPTIONS keepalive is answered, and a source that keeps failing authentication is banned (pike + htable).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
)

// kemiBasicScript is where Debian's kamailio package installs the example; kemi-basic.toml names it.
const kemiBasicScript = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua"

// needKemiBasic skips the test when the kamailio package (with its docs) is not installed, and fails it
// under CI=true, where it must be.
func needKemiBasic(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(kemiBasicScript); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (install the kamailio package with its docs); CI=true so this is a failure", kemiBasicScript, err)
		}
		t.Skipf("%s: %v: install the kamailio package to run this test", kemiBasicScript, err)
	}
}

// TestExampleKemiBasicCheck: `siplua -c -config scripts/examples/kemi-basic.toml` prints "config OK" and
// nothing else: every KSR function the packaged script calls exists, and its presence checks of modules
// that are not loaded (`if not KSR.rtpproxy then`) are understood.
func TestExampleKemiBasicCheck(t *testing.T) {
	needKemiBasic(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"-c", "-config", filepath.Join(exampleDir, "kemi-basic.toml")}, &stdout, &stderr)
	if code != 0 || stdout.String() != "config OK\n" || stderr.Len() != 0 {
		t.Fatalf("siplua -c: exit %d, stdout %q, stderr %q; want exit 0, \"config OK\"", code, stdout.String(), stderr.String())
	}
}

// exampleKemiBasic starts the binary on a copy of kemi-basic.toml (and users.csv) in a temp directory, on
// kernel-chosen ports with "127.0.0.1:5060" as an alias (so sip:bob@127.0.0.1 stays local), MD5 challenges
// only (SIPp 3.6) and a ctl socket there; each change is checked to apply.
func exampleKemiBasic(t *testing.T) (p *e2eProc, ctlSock string) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(exampleDir, "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(exampleDir, "kemi-basic.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range [][2]string{
		{`listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]`,
			`listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]` + "\n" + `aliases = ["127.0.0.1:5060"]`},
		{`algorithms = ["SHA-256", "MD5"]`, `algorithms = ["MD5"]`},
		{"[lua]\n", "[ctl]\nsocket = \"ctl.sock\"\n\n[lua]\n"},
		{`script = "` + kemiBasicScript + `"`, `script = "` + kemiBasicScript + `"` + "\nroute_timeout = 2000"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("kemi-basic.toml no longer has %q: update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "kemi-basic.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e2eStart(t, "-config", path), filepath.Join(dir, "ctl.sock")
}

// TestExampleKemiBasic runs Kamailio's packaged example through siplua:
//   - register and call (SIPp, as TestExampleRegistrarSIPp): bob registers (401, wrong password 401, 200),
//     alice calls him (407, INVITE with credentials, 180/200 with Record-Route, ACK, BYE); an unregistered
//     local user gets 404, a call to another domain is relayed with P-Hint, a foreign relay attempt 403;
//   - keepalive: OPTIONS to the proxy without a user gets "200 Keepalive";
//   - cancel: carol registers, alice calls her, carol rings, alice cancels: 200 to the CANCEL, the CANCEL
//     reaches carol, her 487 reaches alice;
//   - ban: a source that is not the proxy (127.0.0.2) keeps sending REGISTERs with a wrong password; pike
//     finds it flooding, the script puts it in the htable ipban and from then on it gets no answer at all,
//     while other sources still do.
func TestExampleKemiBasic(t *testing.T) {
	needKemiBasic(t)
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	p, sock := exampleKemiBasic(t)
	addr := p.UDP

	t.Run("register and call", func(t *testing.T) { exampleCalls(t, sipp, addr) })

	t.Run("keepalive", func(t *testing.T) {
		c := enginetest.NewUDPClient(t, addr)
		c.Send(c.Request("OPTIONS", "sip:"+addr.String()))
		exampleExpect(t, c, 200, "Keepalive")
	})

	t.Run("cancel", func(t *testing.T) { exampleKemiCancel(t, addr) })

	t.Run("ban", func(t *testing.T) { exampleKemiBan(t, addr, sipluaBanCtl(sock)) })
}

// banCtl looks at and lifts a ban: siplua's ctl htable.get / htable.delete (nil for Kamailio, where the
// test only looks at the wire).
type banCtl struct {
	banned func(t *testing.T, ip string)
	unban  func(t *testing.T, ip string)
}

func sipluaBanCtl(sock string) *banCtl {
	return &banCtl{
		banned: func(t *testing.T, ip string) {
			_, res, err := ctl.Call(sock, "htable.get", []string{"ipban", ip}, 5*time.Second)
			if err != nil {
				t.Fatalf("htable.get ipban %s: %v (the script did not ban the source)", ip, err)
			}
			var item struct{ Item struct{ Name string } }
			if err := json.Unmarshal(res, &item); err != nil || item.Item.Name != ip {
				t.Fatalf("htable.get ipban %s = %s (%v): want the banned address", ip, res, err)
			}
		},
		unban: func(t *testing.T, ip string) {
			if _, _, err := ctl.Call(sock, "htable.delete", []string{"ipban", ip}, 5*time.Second); err != nil {
				t.Fatalf("htable.delete: %v", err)
			}
		},
	}
}

// exampleKemiRegister registers user from phone (two REGISTERs: 401, then with credentials) and checks the
// 200.
func exampleKemiRegister(t *testing.T, phone *enginetest.Client, user, password string) {
	t.Helper()
	src := phone.Addr.String()
	callID := "reg-" + enginetest.RandHex(6)
	reg := func(cseq int, auth string) string {
		s := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + src + ";rport;branch=z9hG4bK" + enginetest.RandHex(8) + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:" + user + "@127.0.0.1>;tag=r" + enginetest.RandHex(4) + "\r\n" +
			"To: <sip:" + user + "@127.0.0.1>\r\n" +
			"Call-ID: " + callID + "\r\n" +
			fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
			"Contact: <sip:" + user + "@" + src + ">\r\n" +
			"Expires: 600\r\n"
		if auth != "" {
			s += "Authorization: " + auth + "\r\n"
		}
		return s + "Content-Length: 0\r\n\r\n"
	}
	phone.Send(reg(1, ""))
	ch := exampleExpect(t, phone, 401, "Unauthorized")
	phone.Send(reg(2, exampleDigest(t, ch, "WWW-Authenticate", "REGISTER", "sip:127.0.0.1", user, password)))
	ok := exampleExpect(t, phone, 200, "OK")
	if c := ok.Get(t, "Contact"); !strings.Contains(c, "<sip:"+user+"@"+src+">") {
		t.Fatalf("200 Contact %q: want the registered <sip:%s@%s>", c, user, src)
	}
}

// exampleKemiCancel: alice calls carol (registered from a test socket), carol rings, alice cancels.
func exampleKemiCancel(t *testing.T, addr netip.AddrPort) {
	carol := enginetest.NewUDPClient(t, addr)
	exampleKemiRegister(t, carol, "carol", "carol-secret")

	alice := enginetest.NewUDPClient(t, addr)
	inv := exampleInvite(alice.Addr.String(), "sip:carol@127.0.0.1", "sip:alice@127.0.0.1", "k1", 1, "")
	alice.Send(inv)
	ch := exampleExpect(t, alice, 407, "Proxy Authentication Required")
	alice.Send(exampleAck(inv, ch))
	auth := exampleDigest(t, ch, "Proxy-Authenticate", "INVITE", "sip:carol@127.0.0.1", "alice", "alice-secret")
	inv = exampleInvite(alice.Addr.String(), "sip:carol@127.0.0.1", "sip:alice@127.0.0.1", "k1", 2,
		"Proxy-Authorization: "+auth)
	alice.Send(inv)

	got := exampleKemiRecvRequest(t, carol, "INVITE")
	if want := "INVITE sip:carol@" + carol.Addr.String() + " SIP/2.0"; got.First != want {
		t.Fatalf("request line at carol %q, want %q", got.First, want)
	}
	if len(got.All("Proxy-Authorization")) != 0 {
		t.Errorf("the proxy must consume alice's credentials:\n%s", got)
	}
	carol.Send(exampleReply(got, 180, "Ringing"))
	r := e2eParse(t, alice.RecvRaw(5*time.Second))
	for strings.HasPrefix(r.First, "SIP/2.0 100") {
		r = e2eParse(t, alice.RecvRaw(5*time.Second))
	}
	if r.First != "SIP/2.0 180 Ringing" {
		t.Fatalf("alice got %q, want 180 Ringing", r.First)
	}

	// CANCEL: the INVITE's request line, top Via, From, To (no tag), Call-ID and CSeq number
	var cancel strings.Builder
	lines := strings.Split(strings.TrimSuffix(inv, "\r\n\r\n"), "\r\n")
	cancel.WriteString(strings.Replace(lines[0], "INVITE", "CANCEL", 1) + "\r\n")
	for _, l := range lines[1:] {
		name, v, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "via", "from", "to", "call-id", "max-forwards":
			cancel.WriteString(l + "\r\n")
		case "cseq":
			cancel.WriteString("CSeq: " + strings.Replace(strings.TrimSpace(v), "INVITE", "CANCEL", 1) + "\r\n")
		}
	}
	cancel.WriteString("Content-Length: 0\r\n\r\n")
	alice.Send(cancel.String())
	ok := e2eParse(t, alice.RecvRaw(5*time.Second))
	if ok.First != "SIP/2.0 200 canceling" || !strings.HasSuffix(ok.Get(t, "CSeq"), "CANCEL") {
		t.Fatalf("alice's CANCEL got %q (CSeq %v), want Kamailio tm's \"200 canceling\" for the CANCEL", ok.First, ok.All("CSeq"))
	}

	c := exampleKemiRecvRequest(t, carol, "CANCEL")
	if want := "CANCEL sip:carol@" + carol.Addr.String() + " SIP/2.0"; c.First != want {
		t.Errorf("CANCEL at carol %q, want %q", c.First, want)
	}
	if gv, cv := got.All("Via"), c.All("Via"); len(cv) == 0 || len(gv) == 0 || cv[0] != gv[0] {
		t.Errorf("the CANCEL's top Via %q must be the INVITE's %q", cv, gv)
	}
	carol.Send(exampleReply(c, 200, "OK"))
	carol.Send(exampleReply(got, 487, "Request Terminated"))
	fin := exampleExpect(t, alice, 487, "Request Terminated")
	alice.Send(exampleAck(inv, fin))
}

// exampleKemiRecvRequest reads messages at phone until a request of method comes (NAT keepalives and
// retransmissions of other requests are skipped).
func exampleKemiRecvRequest(t *testing.T, phone *enginetest.Client, method string) e2eMsg {
	t.Helper()
	for {
		raw, err := phone.TryRecv(5 * time.Second)
		if err != nil {
			t.Fatalf("no %s reached %s: %v", method, phone.Addr, err)
		}
		if m := e2eParse(t, raw); strings.HasPrefix(m.First, method+" ") {
			return m
		}
	}
}

// exampleKemiBan floods REGISTERs with a wrong password from 127.0.0.2 until the proxy stops answering,
// then checks the ban: it is in the htable (ctl htable.get ipban 127.0.0.2), requests from 127.0.0.2 stay
// unanswered after pike's own block would have expired (remove_latency 4 s … the script drops them through
// the ipban check), and requests from elsewhere are still answered.
func exampleKemiBan(t *testing.T, addr netip.AddrPort, bc *banCtl) {
	bad := netip.MustParseAddr("127.0.0.2")
	mallory := enginetest.NewUDPClientFrom(t, bad, addr)
	src := mallory.Addr.String()
	reg := func(n int, auth string) string {
		s := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + src + ";rport;branch=z9hG4bK" + enginetest.RandHex(8) + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:alice@127.0.0.1>;tag=ban1\r\n" +
			"To: <sip:alice@127.0.0.1>\r\n" +
			"Call-ID: ban-" + src + "\r\n" +
			fmt.Sprintf("CSeq: %d REGISTER\r\n", n) +
			"Contact: <sip:alice@" + src + ">\r\n"
		if auth != "" {
			s += "Authorization: " + auth + "\r\n"
		}
		return s + "Content-Length: 0\r\n\r\n"
	}
	mallory.Send(reg(1, ""))
	ch := exampleExpect(t, mallory, 401, "Unauthorized")
	answered, unanswered := 1, 0
	for n := 2; n < 200 && unanswered < 3; n++ {
		mallory.Send(reg(n, exampleDigest(t, ch, "WWW-Authenticate", "REGISTER", "sip:127.0.0.1", "alice", "guess-"+fmt.Sprint(n))))
		raw, err := mallory.TryRecv(300 * time.Millisecond)
		if err != nil {
			unanswered++
			continue
		}
		if m := e2eParse(t, raw); m.First != "SIP/2.0 401 Unauthorized" {
			t.Fatalf("wrong password %d: got %q, want 401 Unauthorized", n, m.First)
		}
		if unanswered > 0 {
			t.Fatalf("an answer after the source was blocked (request %d)", n)
		}
		answered++
	}
	if unanswered == 0 {
		t.Fatalf("%d failed REGISTERs from %s all answered: never banned", answered, bad)
	}
	// pike: 16 requests per 2 s unit; the first ones are answered
	if answered < 10 {
		t.Errorf("only %d REGISTERs answered before the ban, want the first ones (pike density 16) answered", answered)
	}

	if bc != nil {
		bc.banned(t, bad.String())
	}

	// pike forgets the source after remove_latency (4 s) of calm; the ipban entry (300 s) still drops it
	time.Sleep(5 * time.Second)
	later := enginetest.NewUDPClientFrom(t, bad, addr)
	later.Send(later.Request("OPTIONS", "sip:"+addr.String()))
	if raw, err := later.TryRecv(time.Second); err == nil {
		t.Fatalf("banned source answered: %q", bytes.SplitN(raw, []byte("\r\n"), 2)[0])
	}
	good := enginetest.NewUDPClient(t, addr)
	good.Send(good.Request("OPTIONS", "sip:"+addr.String()))
	exampleExpect(t, good, 200, "Keepalive")

	// and once unbanned (ctl htable.delete, as an operator would), it is answered again
	if bc != nil {
		bc.unban(t, bad.String())
		later.Send(later.Request("OPTIONS", "sip:"+addr.String()))
		exampleExpect(t, later, 200, "Keepalive")
	}
}

// TestExampleKemiBasicKamailio runs the flows of TestExampleKemiBasic, unchanged, against Kamailio 5.6
// running the same packaged script with app_lua (scripts/examples/kamailio-kemi-basic.cfg: the modules and
// modparams of kemi-basic.toml, users in db_text): both proxies answer alike on the wire.
func TestExampleKemiBasicKamailio(t *testing.T) {
	needKemiBasic(t)
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	kam := enginetest.NeedProgram(t, "kamailio", "kamailio")
	if mods, _ := filepath.Glob("/usr/lib/*/kamailio/modules/app_lua.so"); len(mods) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("kamailio's app_lua module not found (install kamailio-lua-modules); CI=true so this is a failure")
		}
		t.Skip("kamailio's app_lua module not found: install kamailio-lua-modules to run this test")
	}
	addr := exampleKamailioCfg(t, kam, "kamailio-kemi-basic.cfg")
	t.Run("register and call", func(t *testing.T) { exampleCalls(t, sipp, addr) })
	t.Run("keepalive", func(t *testing.T) {
		c := enginetest.NewUDPClient(t, addr)
		c.Send(c.Request("OPTIONS", "sip:"+addr.String()))
		exampleExpect(t, c, 200, "Keepalive")
	})
	t.Run("cancel", func(t *testing.T) { exampleKemiCancel(t, addr) })
	t.Run("ban", func(t *testing.T) { exampleKemiBan(t, addr, nil) })
}

// exampleKamailioCfg starts kamailio -DD -E on an example configuration with a free port and the example
// users (db_text), waits until it answers an OPTIONS ping, and stops it when the test ends.
func exampleKamailioCfg(t *testing.T, _, cfg string) netip.AddrPort {
	t.Helper()
	return enginetest.RunKamailioFile(t, e2eAbs(t, filepath.Join(exampleDir, cfg)),
		fmt.Sprintf("DBURL=%q", "text://"+e2eAbs(t, filepath.Join(exampleDir, "kamailio-dbtext"))))
}
