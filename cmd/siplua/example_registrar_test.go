package main

// The registrar example (scripts/examples/registrar.toml + registrar.lua + users.csv) run as shipped, on
// free ports: `siplua -c` accepts it, SIPp phones register and call through it, and the NAT handling sends
// calls to the address a REGISTER came from.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
)

const exampleDir = "../../scripts/examples"

// TestExampleRegistrarCheck: `siplua -c -config scripts/examples/registrar.toml` prints "config OK", with
// no warning, and writes nothing next to the example (no snapshot file: -c starts no module).
func TestExampleRegistrarCheck(t *testing.T) {
	before, _ := filepath.Glob(filepath.Join(exampleDir, "*"))
	var stdout, stderr bytes.Buffer
	code := run([]string{"-c", "-config", filepath.Join(exampleDir, "registrar.toml")}, &stdout, &stderr)
	if code != 0 || stdout.String() != "config OK\n" || stderr.Len() != 0 {
		t.Fatalf("siplua -c: exit %d, stdout %q, stderr %q; want exit 0, \"config OK\"", code, stdout.String(), stderr.String())
	}
	after, _ := filepath.Glob(filepath.Join(exampleDir, "*"))
	if len(after) != len(before) {
		t.Errorf("siplua -c created files next to the example: before %q, after %q", before, after)
	}
}

// exampleRegistrar copies the example into a temp directory and starts the binary on it, with these
// changes to registrar.toml, each checked to apply (so the test follows the file or fails):
//   - listen on kernel-chosen ports instead of 5060, with "127.0.0.1:5060" as an alias: the example's
//     domain (users.csv, sip:bob@127.0.0.1) stays "myself", while the phones on 127.0.0.1:other ports
//     (SIPp, test sockets) are not;
//   - algorithms = ["MD5"]: SIPp 3.6 computes Digest from the first challenge only, and knows MD5 only;
//   - the ctl socket in the temp directory (tests run side by side).
func exampleRegistrar(t *testing.T) (p *e2eProc, ctlSock string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"registrar.lua", "users.csv"} {
		b, err := os.ReadFile(filepath.Join(exampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(exampleDir, "registrar.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range [][2]string{
		{`listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]`,
			`listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]` + "\n" + `aliases = ["127.0.0.1:5060"]`},
		{`algorithms = ["SHA-256", "MD5"]`, `algorithms = ["MD5"]`},
		{"[lua]\n", "[ctl]\nsocket = \"ctl.sock\"\n\n[lua]\n"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("registrar.toml no longer has %q: update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "registrar.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e2eStart(t, "-config", path), filepath.Join(dir, "ctl.sock")
}

// exampleSIPp runs one SIPp call of a scenario from testdata/sipp on 127.0.0.1:port, against proxy
// (empty for a UAS), and returns a function that waits for it and fails the test unless SIPp exited 0
// (every check of the scenario passed).
func exampleSIPp(t *testing.T, sipp, scenario string, port int, proxy string) (wait func()) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-sf", e2eAbs(t, filepath.Join("testdata/sipp", scenario)), "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-cp", strconv.Itoa(enginetest.FreePort(t)), "-mp", strconv.Itoa(enginetest.FreePort(t)),
		"-nostdin", "-timeout", "10s", "-timeout_error", "-recv_timeout", "5000",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log")}
	if proxy != "" {
		args = append([]string{proxy}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	cmd := exec.CommandContext(ctx, sipp, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() {
		t.Helper()
		defer cancel()
		if err := <-done; err != nil {
			errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
			msgs, _ := os.ReadFile(filepath.Join(dir, "messages.log"))
			t.Fatalf("sipp %s: %v\nerrors:\n%s\nmessages:\n%s\noutput tail:\n%s", scenario, err,
				e2eTail(errs, 3000), e2eTail(msgs, 6000), e2eTail(out.Bytes(), 1500))
		}
	}
}

// TestExampleRegistrarSIPp: SIPp bob registers (401, wrong password 401, 200), SIPp alice calls him through
// the proxy (407, INVITE with credentials, 180/200 from bob's SIPp UAS at his registered contact with
// Record-Route, ACK, BYE, 200). Then, from Go sockets: an authenticated INVITE to a local user who is not
// registered gets 404, alice's call to another domain is relayed (P-Hint: outbound), and a foreign caller
// to a foreign domain gets 403 "Not relaying".
func TestExampleRegistrarSIPp(t *testing.T) {
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	p, _ := exampleRegistrar(t)
	exampleCalls(t, sipp, p.UDP)
}

// exampleCalls is the flow of TestExampleRegistrarSIPp against the proxy at addr.
func exampleCalls(t *testing.T, sipp string, addr netip.AddrPort) {
	proxy := addr.String()
	bobPort, alicePort := enginetest.FreePort(t), enginetest.FreePort(t)

	// bob registers from bobPort, then his phone (a SIPp UAS on the same port) waits for the call
	exampleSIPp(t, sipp, "example_register_bob.xml", bobPort, proxy)()
	waitBob := exampleSIPp(t, sipp, "example_uas_bob.xml", bobPort, "")
	time.Sleep(300 * time.Millisecond) // the UAS binds its port
	exampleSIPp(t, sipp, "example_uac_alice.xml", alicePort, proxy)()
	waitBob()

	t.Run("unregistered local user 404", func(t *testing.T) {
		c := enginetest.NewUDPClient(t, addr)
		inv := exampleInvite(c.Addr.String(), "sip:carol@127.0.0.1", "sip:alice@127.0.0.1", "c1", 1, "")
		c.Send(inv)
		ch := exampleExpect(t, c, 407, "Proxy Authentication Required")
		c.Send(exampleAck(inv, ch))
		auth := exampleDigest(t, ch, "Proxy-Authenticate", "INVITE", "sip:carol@127.0.0.1", "alice", "alice-secret")
		inv = exampleInvite(c.Addr.String(), "sip:carol@127.0.0.1", "sip:alice@127.0.0.1", "c1", 2,
			"Proxy-Authorization: "+auth)
		c.Send(inv)
		r := exampleExpect(t, c, 404, "Not Found")
		c.Send(exampleAck(inv, r))
	})

	t.Run("local user to another domain relayed", func(t *testing.T) {
		c := enginetest.NewUDPClient(t, addr)
		far := enginetest.NewUDPClient(t, addr) // "another domain": 127.0.0.1 on a port that is not the proxy's
		ruri := "sip:dave@" + far.Addr.String()
		inv := exampleInvite(c.Addr.String(), ruri, "sip:alice@127.0.0.1", "o1", 1, "")
		c.Send(inv)
		ch := exampleExpect(t, c, 407, "Proxy Authentication Required")
		c.Send(exampleAck(inv, ch))
		auth := exampleDigest(t, ch, "Proxy-Authenticate", "INVITE", ruri, "alice", "alice-secret")
		inv = exampleInvite(c.Addr.String(), ruri, "sip:alice@127.0.0.1", "o1", 2, "Proxy-Authorization: "+auth)
		c.Send(inv)
		got := e2eParse(t, far.RecvRaw(5*time.Second))
		if want := "INVITE " + ruri + " SIP/2.0"; got.First != want {
			t.Fatalf("request line %q, want %q", got.First, want)
		}
		if h := got.All("P-Hint"); len(h) != 1 || h[0] != "outbound" {
			t.Errorf("P-Hint %q, want [outbound]", h)
		}
		if len(got.All("Record-Route")) != 1 || len(got.All("Proxy-Authorization")) != 0 {
			t.Errorf("want one Record-Route and no Proxy-Authorization:\n%s", got)
		}
		far.Send(exampleReply(got, 486, "Busy Here"))
		r := exampleExpect(t, c, 486, "Busy Here")
		c.Send(exampleAck(inv, r))
	})

	t.Run("foreign caller to foreign domain 403", func(t *testing.T) {
		c := enginetest.NewUDPClient(t, addr)
		c.Send(exampleInvite(c.Addr.String(), "sip:someone@example.com", "sip:mallory@example.net", "f1", 1, ""))
		exampleExpect(t, c, 403, "Not relaying")
	})
}

// TestExampleRegistrarNAT: a phone behind NAT registers from 127.0.0.1:P with a Contact naming its private
// address 10.0.0.9; the example stores the address the REGISTER came from (nathelper fix_nated_register →
// registrar received) and a call to that user reaches 127.0.0.1:P, with the Request-URI still the contact.
// Nothing is ever sent to 10.0.0.9: the test stops before the call unless the 200 shows the received address.
func TestExampleRegistrarNAT(t *testing.T) {
	p, sock := exampleRegistrar(t)
	phone := exampleNAT(t, p.UDP)

	// the stored binding (ul.lookup, as kamcmd): received address and the NAT branch flag (FLB_NATB = usrloc
	// nat_bflag), which is what the keepalives of nathelper go by
	_, res, err := ctl.Call(sock, "ul.lookup", []string{"location", "carol"}, 5*time.Second)
	if err != nil {
		t.Fatalf("ul.lookup: %v", err)
	}
	var ul struct {
		Contacts []struct {
			Contact struct {
				Address  string
				Received string
				NAT      bool
			}
		}
	}
	if err := json.Unmarshal(res, &ul); err != nil {
		t.Fatalf("ul.lookup result %s: %v", res, err)
	}
	if len(ul.Contacts) != 1 {
		t.Fatalf("ul.lookup: want one contact, got %s", res)
	}
	c := ul.Contacts[0].Contact
	if c.Address != "sip:carol@10.0.0.9:5060" || c.Received != "sip:"+phone.String() || !c.NAT {
		t.Errorf("binding %+v: want sip:carol@10.0.0.9:5060 received from sip:%s, NAT", c, phone)
	}
}

// exampleNAT is the flow of TestExampleRegistrarNAT against the proxy at addr; it returns the phone's
// public address.
func exampleNAT(t *testing.T, addr netip.AddrPort) netip.AddrPort {
	phone := enginetest.NewUDPClient(t, addr) // the NAT's public side: 127.0.0.1:P
	src := phone.Addr.String()
	reg := func(cseq int, auth string) string {
		s := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + src + ";rport;branch=z9hG4bK" + enginetest.RandHex(8) + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:carol@127.0.0.1>;tag=nat1\r\n" +
			"To: <sip:carol@127.0.0.1>\r\n" +
			"Call-ID: nat-register@10.0.0.9\r\n" +
			fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
			"Contact: <sip:carol@10.0.0.9:5060>\r\n" +
			"Expires: 600\r\n"
		if auth != "" {
			s += "Authorization: " + auth + "\r\n"
		}
		return s + "Content-Length: 0\r\n\r\n"
	}
	phone.Send(reg(1, ""))
	ch := exampleExpect(t, phone, 401, "Unauthorized")
	phone.Send(reg(2, exampleDigest(t, ch, "WWW-Authenticate", "REGISTER", "sip:127.0.0.1", "carol", "carol-secret")))
	ok := exampleExpect(t, phone, 200, "OK")
	contact := ok.Get(t, "Contact")
	wantRcv := `received="sip:` + src + `"`
	if !strings.Contains(contact, "<sip:carol@10.0.0.9:5060>") || !strings.Contains(contact, wantRcv) {
		t.Fatalf("200 Contact %q: want the private contact with %s (not calling it otherwise)", contact, wantRcv)
	}

	// a call from another domain to carol (no authentication for foreign callers, as Kamailio's example)
	caller := enginetest.NewUDPClient(t, addr)
	inv := exampleInvite(caller.Addr.String(), "sip:carol@127.0.0.1", "sip:mallory@example.net", "n1", 1, "")
	caller.Send(inv)
	var got e2eMsg
	for {
		raw, err := phone.TryRecv(5 * time.Second)
		if err != nil {
			t.Fatalf("the call did not reach the phone's public address %s: %v", src, err)
		}
		if m := e2eParse(t, raw); strings.HasPrefix(m.First, "INVITE ") {
			got = m
			break
		} // else a NAT keepalive (OPTIONS): not what this test waits for
	}
	if want := "INVITE sip:carol@10.0.0.9:5060 SIP/2.0"; got.First != want {
		t.Errorf("request line at the phone %q, want %q", got.First, want)
	}
	if rr := got.All("Record-Route"); len(rr) != 1 || !strings.Contains(rr[0], addr.String()) {
		t.Errorf("Record-Route %q, want the proxy's %s", rr, addr)
	}
	// the phone declines; the caller gets the 486 through the proxy
	phone.Send(exampleReply(got, 486, "Busy Here"))
	r := exampleExpect(t, caller, 486, "Busy Here")
	caller.Send(exampleAck(inv, r))
	return phone.Addr
}

// TestExampleRegistrarKamailio runs the flows of TestExampleRegistrarSIPp and TestExampleRegistrarNAT,
// unchanged, against Kamailio 5.6 running the same registrar.lua with app_lua
// (scripts/examples/kamailio-registrar.cfg, users in db_text): the example is Kamailio KEMI, and both
// proxies answer alike on the wire.
func TestExampleRegistrarKamailio(t *testing.T) {
	sipp := enginetest.NeedProgram(t, "sipp", "sip-tester")
	kam := enginetest.NeedProgram(t, "kamailio", "kamailio")
	if mods, _ := filepath.Glob("/usr/lib/*/kamailio/modules/app_lua.so"); len(mods) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("kamailio's app_lua module not found (install kamailio-lua-modules); CI=true so this is a failure")
		}
		t.Skip("kamailio's app_lua module not found: install kamailio-lua-modules to run this test")
	}
	t.Run("calls", func(t *testing.T) { exampleCalls(t, sipp, exampleKamailio(t, kam)) })
	t.Run("nat", func(t *testing.T) { exampleNAT(t, exampleKamailio(t, kam)) })
}

// exampleKamailio starts kamailio -DD -E on kamailio-registrar.cfg with a free port and the example's files
// (absolute paths), waits until it answers an OPTIONS ping, and stops it with SIGTERM when the test ends.
func exampleKamailio(t *testing.T, _ string) netip.AddrPort {
	t.Helper()
	abs := func(rel string) string { return e2eAbs(t, filepath.Join(exampleDir, rel)) }
	return enginetest.RunKamailioFile(t, abs("kamailio-registrar.cfg"),
		fmt.Sprintf("LUA_SCRIPT=%q", abs("registrar.lua")), fmt.Sprintf("DBURL=%q", "text://"+abs("kamailio-dbtext")))
}

// exampleInvite builds an INVITE from a test socket at sentBy.
func exampleInvite(sentBy, ruri, from, callID string, cseq int, extra string) string {
	if extra != "" {
		extra += "\r\n"
	}
	return fmt.Sprintf("INVITE %s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;rport;branch=z9hG4bK%s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <%s>;tag=%s-from\r\n"+
		"To: <%s>\r\n"+
		"Call-ID: %s@example-test\r\n"+
		"CSeq: %d INVITE\r\n"+
		"Contact: <sip:caller@%s>\r\n"+
		"%sContent-Length: 0\r\n\r\n",
		ruri, sentBy, enginetest.RandHex(8), from, callID, ruri, callID, cseq, sentBy, extra)
}

// exampleAck is the ACK of a non-2xx final reply to inv: inv's request line, Via, From, Call-ID and CSeq
// number, the reply's To (with its tag).
func exampleAck(inv string, reply e2eMsg) string {
	lines := strings.Split(strings.TrimSuffix(inv, "\r\n\r\n"), "\r\n")
	var b strings.Builder
	b.WriteString(strings.Replace(lines[0], "INVITE", "ACK", 1) + "\r\n")
	for _, l := range lines[1:] {
		name, v, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "via", "from", "call-id", "max-forwards":
			b.WriteString(l + "\r\n")
		case "cseq":
			b.WriteString("CSeq: " + strings.Replace(strings.TrimSpace(v), "INVITE", "ACK", 1) + "\r\n")
		}
	}
	for _, to := range reply.All("To") {
		b.WriteString("To: " + to + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// exampleReply answers a request received by a test phone.
func exampleReply(req e2eMsg, code int, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, h := range req.Hdrs {
		switch strings.ToLower(h[0]) {
		case "via", "record-route", "from", "call-id", "cseq":
			b.WriteString(h[0] + ": " + h[1] + "\r\n")
		case "to":
			b.WriteString(h[0] + ": " + h[1] + ";tag=phone1\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// exampleExpect reads replies until a final one (skipping 1xx) and checks its status line.
func exampleExpect(t *testing.T, c *enginetest.Client, code int, reason string) e2eMsg {
	t.Helper()
	for {
		raw, err := c.TryRecv(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %d %s: %v", code, reason, err)
		}
		m := e2eParse(t, raw)
		if strings.HasPrefix(m.First, "SIP/2.0 1") {
			continue
		}
		if want := fmt.Sprintf("SIP/2.0 %d %s", code, reason); m.First != want {
			t.Fatalf("got %q, want %q:\n%s", m.First, want, m)
		}
		return m
	}
}

var exampleDigestParam = regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^,\s]+))`)

// exampleDigest answers the MD5 challenge in header hdr of reply with qop=auth (RFC 2617 §3.2.2).
func exampleDigest(t *testing.T, reply e2eMsg, hdr, method, uri, user, password string) string {
	t.Helper()
	chs := reply.All(hdr)
	if len(chs) == 0 {
		t.Fatalf("no %s in\n%s", hdr, reply)
	}
	p := map[string]string{}
	for _, m := range exampleDigestParam.FindAllStringSubmatch(strings.TrimPrefix(chs[0], "Digest "), -1) {
		p[strings.ToLower(m[1])] = m[2] + m[3]
	}
	if p["algorithm"] != "" && p["algorithm"] != "MD5" {
		t.Fatalf("first challenge %q: want MD5", chs[0])
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + p["realm"] + ":" + password)
	ha2 := h(method + ":" + uri)
	s := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5`, user, p["realm"], p["nonce"], uri)
	if p["qop"] == "" {
		s += `, response="` + h(ha1+":"+p["nonce"]+":"+ha2) + `"`
	} else {
		const nc, cnonce = "00000001", "0a4f113b"
		s += `, response="` + h(ha1+":"+p["nonce"]+":"+nc+":"+cnonce+":auth:"+ha2) + `", qop=auth, nc=` + nc + `, cnonce="` + cnonce + `"`
	}
	if o, ok := p["opaque"]; ok {
		s += fmt.Sprintf(`, opaque="%s"`, o)
	}
	return s
}
