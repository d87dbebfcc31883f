package registrar_test

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// kamailioCfg is the Kamailio 5.6 configuration whose behaviour siplua's registrar is compared with: the
// same script as cmpScript below, in Kamailio's native language.
const kamailioCfg = enginetest.KamailioGlobals + `loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "preload", "location")
modparam("registrar", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "xavp_cfg", "reg")
MODPARAMS
request_route {
	if (is_method("REGISTER")) {
		if ($hdr(X-Rcv) != $null) { $avp(RECEIVED) = $hdr(X-Rcv); }
		if ($hdr(X-Flags) == "4") {
			save("location", "0x06");
		} else {
			save("location", "0x02");
		}
		$var(s) = $rc;
		append_to_reply("X-Save: $var(s)\r\n");
		reg_send_reply();
		exit;
	}
	if ($hdr(X-Fn) == "unregister") {
		unregister("location", "$hdr(X-Arg)");
		$var(r) = $rc;
		append_to_reply("X-Ret: $var(r)\r\n");
		sl_send_reply("200", "Fn");
		exit;
	}
	if ($hdr(X-Fn) == "registered") {
		registered("location");
		$var(r) = $rc;
		append_to_reply("X-Ret: $var(r)\r\nX-Ru: $ru\r\n");
		sl_send_reply("200", "Fn");
		exit;
	}
	if ($hdr(X-Fn) == "registered_flags") {
		if ($hdr(X-Cid) != $null) { $xavp(reg=>match_callid) = $hdr(X-Cid); }
		if ($hdr(X-Mrcv) != $null) { $xavp(reg=>match_received) = $hdr(X-Mrcv); }
		if ($hdr(X-Mct) != $null) { $xavp(reg=>match_contact) = $hdr(X-Mct); }
		$var(mf) = $(hdr(X-Mf){s.int});
		$var(ma) = $(hdr(X-Ma){s.int});
		registered("location", "$ru", "$var(mf)", "$var(ma)");
		$var(r) = $rc;
		append_to_reply("X-Ret: $var(r)\r\nX-Ru: $ru\r\n");
		sl_send_reply("200", "Fn");
		exit;
	}
	lookup("location");
	$var(r) = $rc;
	append_to_reply("X-Ret: $var(r)\r\nX-Ru: $ru\r\nX-Du: $du\r\n");
	sl_send_reply("404", "Lookup");
	exit;
}
`

const cmpScript = `
function ksr_request_route()
	if KSR.is_REGISTER() then
		local rcv = KSR.hdr.get("X-Rcv")
		if rcv then KSR.pv.sets("$avp(RECEIVED)", rcv) end
		local f = 2
		if KSR.hdr.get("X-Flags") == "4" then f = 6 end
		local rc = KSR.registrar.save("location", f)
		KSR.hdr.append_to_reply("X-Save: " .. rc .. "\r\n")
		KSR.registrar.reg_send_reply()
		return 1
	end
	local fn = KSR.hdr.get("X-Fn")
	if fn == "unregister" then
		KSR.hdr.append_to_reply("X-Ret: " .. KSR.registrar.unregister("location", KSR.hdr.get("X-Arg")) .. "\r\n")
		KSR.sl.sl_send_reply(200, "Fn")
		return 1
	elseif fn == "registered" then
		KSR.hdr.append_to_reply("X-Ret: " .. KSR.registrar.registered("location") .. "\r\nX-Ru: " .. KSR.pv.get("$ru") .. "\r\n")
		KSR.sl.sl_send_reply(200, "Fn")
		return 1
	elseif fn == "registered_flags" then
		for h, c in pairs({["X-Cid"] = "match_callid", ["X-Mrcv"] = "match_received", ["X-Mct"] = "match_contact"}) do
			local v = KSR.hdr.get(h)
			if v then KSR.pv.sets("$xavp(reg=>" .. c .. ")", v) end
		end
		local mf, ma = tonumber(KSR.hdr.get("X-Mf")), tonumber(KSR.hdr.get("X-Ma"))
		local rc
		if ma == 0 then
			rc = KSR.registrar.registered_flags("location", KSR.pv.get("$ru"), mf)
		else
			rc = KSR.registrar.registered_action("location", KSR.pv.get("$ru"), mf, ma)
		end
		KSR.hdr.append_to_reply("X-Ret: " .. rc .. "\r\nX-Ru: " .. KSR.pv.get("$ru") .. "\r\n")
		KSR.sl.sl_send_reply(200, "Fn")
		return 1
	end
	local rc = KSR.registrar.lookup("location")
	local du = KSR.pv.get("$du") or "<null>"
	KSR.hdr.append_to_reply("X-Ret: " .. rc .. "\r\nX-Ru: " .. KSR.pv.get("$ru") .. "\r\nX-Du: " .. du .. "\r\n")
	KSR.sl.sl_send_reply(404, "Lookup")
end
`

// startKamailio runs Kamailio with kamailioCfg and the registrar modparams on a free UDP port until the
// test ends.
func startKamailio(t *testing.T, modparams string) netip.AddrPort {
	t.Helper()
	return enginetest.RunKamailio(t, t.TempDir(), strings.Replace(kamailioCfg, "MODPARAMS", modparams, 1))
}

var expiresNum = regexp.MustCompile(`expires=(\d+)`)

// sameExpires compares two Contact lists allowing the remaining seconds to differ by one (the two servers
// may compute them on either side of a second boundary).
func sameExpires(a, b string) bool {
	na, nb := expiresNum.FindAllStringSubmatch(a, -1), expiresNum.FindAllStringSubmatch(b, -1)
	if len(na) != len(nb) || expiresNum.ReplaceAllString(a, "expires=N") != expiresNum.ReplaceAllString(b, "expires=N") {
		return false
	}
	for i := range na {
		x, _ := strconv.Atoi(na[i][1])
		y, _ := strconv.Atoi(nb[i][1])
		if x-y > 1 || y-x > 1 {
			return false
		}
	}
	return true
}

type cmpStep struct {
	method, user string
	cseq         int
	callID       string
	hdrs         []string
}

// TestAgainstKamailio sends the same REGISTER and lookup sequences to Kamailio 5.6 and to siplua, each
// with the same registrar parameters, and compares what matters on the wire: status line, Contact list,
// Path, Unsupported, P-Registrar-Error, Min-Expires, save's return code (X-Save, through flag 0x02 and
// reg_send_reply), and lookup's return code, R-URI and $du.
func TestAgainstKamailio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		toml  string // [modules.registrar] keys
		kam   string // the same as modparams
		steps []cmpStep
	}{
		{"defaults-path-lazy", "max_contacts = 2\nuse_path = true\npath_mode = 1\n",
			"modparam(\"registrar\", \"max_contacts\", 2)\nmodparam(\"registrar\", \"use_path\", 1)\nmodparam(\"registrar\", \"path_mode\", 1)\n",
			[]cmpStep{
				{"REGISTER", "alice", 1, "a", []string{"Contact: <sip:alice@10.0.0.1:5070>;q=0.5", "User-Agent: ua1"}},
				{"REGISTER", "alice", 2, "a", []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 30"}},
				{"REGISTER", "alice", 3, "a", []string{"Contact: <sip:alice@10.0.0.3:5070>", "Expires: 300"}},
				{"REGISTER", "alice", 3, "a", []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 300"}},
				{"REGISTER", "alice", 2, "a", []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 300"}},
				{"REGISTER", "alice", 3, "a", []string{"Contact: <sip:alice@10.0.0.2:5070>;expires=900"}},
				{"REGISTER", "alice", 5, "a", []string{"Contact: *"}},
				{"REGISTER", "alice", 5, "a", []string{"Contact: *", "Expires: 0", "Contact: <sip:a@b>"}},
				{"REGISTER", "alice", 6, "a", nil},
				{"REGISTER", "alice", 7, "b", []string{"Contact: <sip:alice@10.0.0.2:5070>;q=1;expires=120"}},
				{"INVITE", "alice", 1, "i1", nil},
				{"REGISTER", "alice", 8, "b", []string{"Contact: <sip:alice@10.0.0.1:5070>;expires=0"}},
				{"REGISTER", "alice", 9, "b", []string{"Contact: <sip:alice@10.0.0.2:5070>;q=abc"}},
				{"REGISTER", "alice", 10, "b", []string{"Contact: <sip:alice@10.0.0.2:5070>;q=0.125;expires=abc"}},
				{"REGISTER", "alice", 11, "b", []string{"Contact: <sip:alice@10.0.0.9>;expires=0"}},
				{"REGISTER", "bob", 1, "c", []string{"Contact: <sip:bob@10.0.0.5:5070>;expires=120",
					"Path: <sip:edge1.example.net;lr>, <sip:edge2.example.net;lr>", "Supported: path", "X-Rcv: sip:1.2.3.4:5678"}},
				{"REGISTER", "bob", 1, "c", []string{"Contact: <sip:bob@10.0.0.5:5070>;expires=120"}},
				{"INVITE", "bob", 1, "i2", nil},
				{"REGISTER", "bob", 2, "c", []string{"Contact: <sip:bob@10.0.0.6:5070>;expires=100, <sip:bob@10.0.0.7>;q=1;expires=100"}},
				{"REGISTER", "bob", 3, "c", []string{"Contact: <sip:bob@10.0.0.8>", "X-Rcv: sip:9.9.9.9:1234"}},
				{"REGISTER", "carol", 1, "d", []string{"Contact: <sip:carol@10.0.0.9>", "X-Rcv: sip:5.6.7.8:5060;transport=tcp"}},
				{"INVITE", "carol", 1, "i3", nil},
				{"REGISTER", "bob", 4, "c", []string{"Contact: *", "Expires: 0"}},
				{"INVITE", "bob", 1, "i4", nil},
				{"REGISTER", "BOB", 5, "c", []string{"Contact: <sip:bob@10.0.0.6:5070>;expires=100"}},
				{"INVITE", "Bob", 1, "i5", nil},
				{"REGISTER", "dan", 1, "e", []string{"Contact: <sip:d@10.0.0.1>, <sip:d@10.0.0.1>;expires=100"}},
				{"REGISTER", "dan", 2, "e", []string{"Contact: <sip:d@10.0.0.1>;expires=200, <sip:d@10.0.0.1>;expires=100"}},
				{"REGISTER", "erin", 1, "f", []string{`Contact: <sip:e@10.0.0.3>;expires=500;+sip.instance="<urn:uuid:abc>";reg-id=1`}},
			}},
		{"strict-423-replace", "min_expires_mode = 1\nuse_path = true\nmethod_filtering = true\nmax_expires = 1000\nmin_expires = 100\n",
			"modparam(\"registrar\", \"min_expires_mode\", 1)\nmodparam(\"registrar\", \"use_path\", 1)\nmodparam(\"registrar\", \"method_filtering\", 1)\n" +
				"modparam(\"registrar\", \"max_expires\", 1000)\nmodparam(\"registrar\", \"min_expires\", 100)\n",
			[]cmpStep{
				{"REGISTER", "pat", 1, "p", []string{"Contact: <sip:p@10.0.0.1>"}},
				{"REGISTER", "pat", 2, "p", []string{"Contact: <sip:p@10.0.0.2>;expires=10"}},
				{"REGISTER", "pat", 3, "p", []string{"Contact: <sip:p@10.0.0.2>", "Expires: 99"}},
				{"REGISTER", "pat", 4, "p", []string{"Contact: <sip:p@10.0.0.2>;expires=100", "Expires: 5"}},
				{"REGISTER", "pat", 5, "p", []string{"Contact: <sip:p@10.0.0.3>;expires=100", "X-Flags: 4"}},
				{"REGISTER", "pat", 6, "p", []string{"Contact: <sip:p@10.0.0.3>;expires=200, <sip:p@10.0.0.4>", "X-Flags: 4"}},
				{"REGISTER", "quinn", 1, "q", []string{"Contact: <sip:q@10.0.0.3>;expires=5"}},
				{"REGISTER", "rob", 1, "r", []string{"Contact: <sip:r@10.0.0.5>", "Path: <sip:e1;lr>"}},
				{"REGISTER", "rob", 2, "r", []string{"Contact: <sip:r@10.0.0.5>", "Path: <sip:e1;lr>", "Supported: path"}},
				{"REGISTER", "sue", 1, "s", []string{"Contact: <sip:s@10.0.0.6>", "Allow: INVITE, ACK, BYE"}},
				{"MESSAGE", "sue", 1, "m1", nil},
				{"INVITE", "sue", 1, "m2", nil},
				{"REGISTER", "sue", 2, "s", []string{"Contact: <sip:s@10.0.0.7>;methods=\"MESSAGE\""}},
				{"MESSAGE", "sue", 1, "m3", nil},
				{"SUBSCRIBE", "sue", 1, "m4", nil},
				{"OPTIONS", "sue", 1, "o1", []string{"X-Fn: registered"}},
				{"OPTIONS", "nobody", 1, "o2", []string{"X-Fn: registered"}},
				{"OPTIONS", "x", 1, "o3", []string{"X-Fn: unregister", "X-Arg: sip:SUE@example.com"}},
				{"OPTIONS", "sue", 1, "o4", []string{"X-Fn: registered"}},
				{"OPTIONS", "x", 1, "o5", []string{"X-Fn: unregister", "X-Arg: sip:sue@example.com"}},
				{"OPTIONS", "x", 1, "o6", []string{"X-Fn: unregister", "X-Arg: mailto:x"}},
				{"REGISTER", "sue", 3, "s", nil},
			}},
		// registered(table, uri, match_option, match_action): the contacts narrowed by the xavp_cfg values
		{"registered-match", "xavp_cfg = \"reg\"\n", "",
			[]cmpStep{
				{"REGISTER", "flo", 1, "fc1", []string{"Contact: <sip:f@10.0.0.1>", "X-Rcv: sip:1.2.3.4:5678"}},
				{"REGISTER", "flo", 1, "fc2", []string{"Contact: <sip:f@10.0.0.2;transport=tcp>"}},
				{"OPTIONS", "flo", 1, "r1", []string{"X-Fn: registered_flags", "X-Mf: 0", "X-Ma: 0", "X-Cid: nope"}},
				{"OPTIONS", "flo", 1, "r2", []string{"X-Fn: registered_flags", "X-Mf: 1", "X-Ma: 0", "X-Cid: nope"}},
				{"OPTIONS", "flo", 1, "r3", []string{"X-Fn: registered_flags", "X-Mf: 1", "X-Ma: 0", "X-Cid: fc2"}},
				{"OPTIONS", "flo", 1, "r4", []string{"X-Fn: registered_flags", "X-Mf: 1", "X-Ma: 0"}},
				{"OPTIONS", "flo", 1, "r5", []string{"X-Fn: registered_flags", "X-Mf: 2", "X-Ma: 0", "X-Mrcv: sip:1.2.3.4:5678"}},
				{"OPTIONS", "flo", 1, "r6", []string{"X-Fn: registered_flags", "X-Mf: 2", "X-Ma: 0", "X-Mrcv: sip:1.2.3.4:9"}},
				{"OPTIONS", "flo", 1, "r7", []string{"X-Fn: registered_flags", "X-Mf: 4", "X-Ma: 0", "X-Mct: sip:f@10.0.0.2;transport=tcp"}},
				{"OPTIONS", "flo", 1, "r8", []string{"X-Fn: registered_flags", "X-Mf: 4", "X-Ma: 0", "X-Mct: sip:f@10.0.0.3"}},
				{"OPTIONS", "flo", 1, "r9", []string{"X-Fn: registered_flags", "X-Mf: 5", "X-Ma: 0", "X-Mct: sip:f@10.0.0.1", "X-Cid: fc1"}},
				{"OPTIONS", "flo", 1, "r10", []string{"X-Fn: registered_flags", "X-Mf: 5", "X-Ma: 0", "X-Mct: sip:f@10.0.0.1", "X-Cid: fc2"}},
				{"OPTIONS", "flo", 1, "r11", []string{"X-Fn: registered_flags", "X-Mf: 3", "X-Ma: 1", "X-Mrcv: sip:1.2.3.4:5678", "X-Cid: fc1"}},
				{"OPTIONS", "flo", 1, "r12", []string{"X-Fn: registered_flags", "X-Mf: 7", "X-Ma: 1", "X-Mrcv: sip:1.2.3.4:5678", "X-Cid: fc2"}},
				{"OPTIONS", "nobody", 1, "r13", []string{"X-Fn: registered_flags", "X-Mf: 1", "X-Ma: 1", "X-Cid: fc1"}},
			}},
	} {
		for _, backend := range []string{"memory", "redis"} {
			t.Run(tc.name+"/"+backend, func(t *testing.T) {
				usrloc := "[modules.usrloc]\n"
				if backend == "redis" {
					usrloc += "backend = \"redis\"\nredis_url = \"" + startRedis(t) + "\"\n"
				}
				kam := startKamailio(t, tc.kam)
				p := enginetest.Start(t, "[modules.sl]\n"+usrloc+"[modules.registrar]\n"+tc.toml, cmpScript)
				ks, ss := cmpClient(t, kam), cmpClient(t, p.UDP)
				for i, s := range tc.steps {
					k := ks.send(t, s.method, s.user, s.cseq, s.callID, s.hdrs)
					g := ss.send(t, s.method, s.user, s.cseq, s.callID, s.hdrs)
					if status(k) != status(g) {
						t.Errorf("step %d (%s %s): status %q, Kamailio %q", i, s.method, s.user, status(g), status(k))
					}
					if !sameExpires(header(k, "Contact"), header(g, "Contact")) {
						t.Errorf("step %d: Contact\n  siplua   %q\n  Kamailio %q", i, header(g, "Contact"), header(k, "Contact"))
					}
					for _, h := range []string{"Path", "P-Registrar-Error", "Min-Expires", "Unsupported", "X-Save", "X-Ret", "X-Ru", "X-Du"} {
						if header(k, h) != header(g, h) {
							t.Errorf("step %d: %s %q, Kamailio %q", i, h, header(g, h), header(k, h))
						}
					}
				}
			})
		}
	}
}

// startRedis runs a redis-server on a free port until the test ends and returns its URL.
func startRedis(t testing.TB) string { return enginetest.StartRedis(t).URL() }

type cmpUA struct {
	c    *net.UDPConn
	peer netip.AddrPort
}

func cmpClient(t *testing.T, peer netip.AddrPort) *cmpUA {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &cmpUA{c: c, peer: peer}
}

func (u *cmpUA) send(t *testing.T, method, user string, cseq int, callID string, hdrs []string) string {
	t.Helper()
	ruri := "sip:example.com"
	if method != "REGISTER" {
		ruri = "sip:" + user + "@example.com"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n", method, ruri, u.c.LocalAddr(), enginetest.RandHex(8))
	fmt.Fprintf(&b, "From: <sip:%s@example.com>;tag=f1\r\nTo: <sip:%s@example.com>\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", user, user, callID, cseq, method)
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := u.c.WriteToUDPAddrPort([]byte(b.String()), u.peer); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = u.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := u.c.Read(buf)
	if err != nil {
		t.Fatalf("%s %s to %s: %v", method, user, u.peer, err)
	}
	return string(buf[:n])
}
