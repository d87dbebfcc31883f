package dispatcher_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// The list both servers load: priorities, equal priorities (Kamailio keeps those in reverse file order),
// default and explicit ports, a transport, a second set holding this host.
const cmpList = `# setid uri flags priority attrs
1 sip:10.0.0.1:5060 0 0 duid=a
1 sip:10.0.0.2 0 0
1 sip:10.0.0.3:5070;transport=tcp 0 5 duid=c;weight=50
1 sip:10.0.0.4:5080 0 0
1 sip:10.0.0.5 0 1
2 sip:127.0.0.1 0 0 duid=me
2 sip:10.0.1.1:5062 0 0
`

const kamailioDsCfg = enginetest.KamailioGlobals + `loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "LISTFILE")
modparam("dispatcher", "flags", 2)
request_route {
	$var(set) = $(hdr(X-Set){s.int});
	$var(alg) = $(hdr(X-Alg){s.int});
	if ($hdr(X-Fn) == "from") {
		ds_is_from_list("$var(set)");
		$var(r) = $rc;
		append_to_reply("X-Ret: $var(r)\r\n");
		sl_send_reply("200", "Fn");
		exit;
	}
	if ($hdr(X-Fn) == "domain") {
		ds_select_domain("$var(set)", "$var(alg)");
	} else {
		ds_select_dst("$var(set)", "$var(alg)");
	}
	$var(r) = $rc;
	$var(l) = "";
	while (ds_next_dst()) {
		$var(l) = $var(l) + $du + ",";
	}
	append_to_reply("X-Ret: $var(r)\r\nX-Ru: $ru\r\nX-Next: $var(l)\r\n");
	sl_send_reply("200", "Fn");
	exit;
}
`

const cmpDsScript = `
function ksr_request_route()
	local set = tonumber(KSR.hdr.get("X-Set"))
	local alg = tonumber(KSR.hdr.get("X-Alg"))
	if KSR.hdr.get("X-Fn") == "from" then
		KSR.hdr.append_to_reply("X-Ret: " .. KSR.dispatcher.ds_is_from_list(set) .. "\r\n")
		KSR.sl.sl_send_reply(200, "Fn")
		return
	end
	local rc
	if KSR.hdr.get("X-Fn") == "domain" then
		rc = KSR.dispatcher.ds_select_domain(set, alg)
	else
		rc = KSR.dispatcher.ds_select_dst(set, alg)
	end
	local l = ""
	while KSR.dispatcher.ds_next_dst() > 0 do
		l = l .. KSR.pv.get("$du") .. ","
	end
	KSR.hdr.append_to_reply("X-Ret: " .. rc .. "\r\nX-Ru: " .. KSR.pv.get("$ru") .. "\r\nX-Next: " .. l .. "\r\n")
	KSR.sl.sl_send_reply(200, "Fn")
end
`

// TestKamailioConformance sends the same requests to Kamailio 5.6 and to siplua, both loading cmpList, and
// compares what ds_select_dst / ds_select_domain chose (hash over Call-ID, From, To, R-URI; round robin;
// priority order), the failover order ds_next_dst walks, and ds_is_from_list.
func TestKamailioConformance(t *testing.T) {
	bin := enginetest.NeedProgram(t, "kamailio", "kamailio")
	dir := t.TempDir()
	list := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(list, []byte(cmpList), 0o644); err != nil {
		t.Fatal(err)
	}
	kam := startKamailio(t, bin, dir, strings.Replace(kamailioDsCfg, "LISTFILE", list, 1))
	p := enginetest.StartFiles(t, "[modules.sl]\n[modules.pv]\n[modules.hdr]\n[modules.dispatcher]\nflags = 2\nlist_file = \"dispatcher.list\"\n",
		map[string]string{"script.lua": cmpDsScript, "dispatcher.list": cmpList})
	kc, sc := enginetest.NewUDPClient(t, kam), p.UDPClient(t)
	ask := func(c *enginetest.Client, req string) string {
		c.Send(req)
		raw := string(c.RecvRaw(3 * time.Second))
		var out []string
		for _, l := range strings.Split(raw, "\r\n") {
			if strings.HasPrefix(l, "X-Ret:") || strings.HasPrefix(l, "X-Ru:") || strings.HasPrefix(l, "X-Next:") {
				out = append(out, l)
			}
		}
		return strings.Join(out, " | ")
	}
	r := rand.New(rand.NewPCG(1, 2))
	// Call-IDs carry bytes above 0x7f too (Kamailio hashes C chars, signed); URIs only what its parser takes
	word := func(a string) string {
		b := []rune(a)
		n := 1 + r.IntN(20)
		var s strings.Builder
		for i := 0; i < n; i++ {
			s.WriteRune(b[r.IntN(len(b))])
		}
		return s.String()
	}
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	uri := func() string {
		u := "sip:" + word(alnum+"-_.~") + "@" + word(alnum) + ".example"
		switch r.IntN(3) {
		case 1:
			u += ":5060"
		case 2:
			u += ":" + strconv.Itoa(1024+r.IntN(60000))
		}
		return u
	}
	build := func(c *enginetest.Client, fn string, set, alg int, cid, from, to, ruri string) string {
		return fmt.Sprintf("INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
			"From: <%s>;tag=1\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nX-Fn: %s\r\nX-Set: %d\r\nX-Alg: %d\r\n"+
			"Content-Length: 0\r\n\r\n", ruri, c.Addr, enginetest.RandHex(6), from, to, cid, fn, set, alg)
	}
	n := 0
	for i := 0; i < 40; i++ {
		cid, from, to, ruri := word(alnum+"-._~ÿé")+"@"+word(alnum), uri(), uri(), uri()
		for _, alg := range []int{0, 1, 2, 3, 4, 8, 12} {
			for _, fn := range []string{"dst", "domain"} {
				for _, set := range []int{1, 2, 3} {
					k := ask(kc, build(kc, fn, set, alg, cid, from, to, ruri))
					s := ask(sc, build(sc, fn, set, alg, cid, from, to, ruri))
					if k != s {
						t.Errorf("%s set %d alg %d (Call-ID %q From %s To %s R-URI %s):\n kamailio: %s\n siplua:   %s",
							fn, set, alg, cid, from, to, ruri, k, s)
					}
					n++
				}
			}
		}
	}
	for _, set := range []int{1, 2, 3} {
		k := ask(kc, build(kc, "from", set, 0, "x", "sip:a@b", "sip:c@d", "sip:e@f"))
		s := ask(sc, build(sc, "from", set, 0, "x", "sip:a@b", "sip:c@d", "sip:e@f"))
		if k != s {
			t.Errorf("ds_is_from_list(%d): kamailio %s, siplua %s", set, k, s)
		}
	}
	t.Logf("%d selections compared", n)
}

func startKamailio(t *testing.T, bin, dir, cfgText string) netip.AddrPort {
	t.Helper()
	return enginetest.RunKamailio(t, dir, cfgText)
}
