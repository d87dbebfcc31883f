package kamdiff_test

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

//go:embed script.lua
var script string

const kamailioCfg = `#!KAMAILIO
debug=1
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
server_signature=no
sip_warning=0
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "corex.so"
loadmodule "siputils.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", 1500)
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

// siplua listens on UDP only, as Kamailio does here (disable_tcp): is_myself with ;transport= sees the
// same listeners on both.
const sipluaCfg = `[core]
listen = ["udp:127.0.0.1:PORT"]
[modules.tm]
fr_timer = 1500
[modules.tmx]
[modules.sl]
[modules.corex]
[modules.siputils]
[modules.maxfwd]
`

// deliberate lists the values where siplua differs from Kamailio on purpose (README "Differences from
// Kamailio"): they are compared and counted, but do not fail the test.
// A key "scenario/*" covers every value of the scenario (the request is answered before the script).
var deliberate = map[string]string{
	"maxfwd-not-a-number/*": "a non-numeric Max-Forwards is answered 400 before the script",
	"cseq-2^31/*":           "a CSeq number of 2^31 or more is answered 400 before the script",
	// unset $rU of sip:+49…;phone-context=…@host;user=phone: both write Kamailio's malformed
	// "sip:;phone-context=…host;user=phone"; Kamailio's parser still reads it, siplua's does not (null)
	"tel/pv.unset($rU)":                          "a URI without host (Kamailio's own output) reads as null",
	"tel/$rz after writes":                       "a URI without host (Kamailio's own output) reads as null",
	"w:hdr_append_no_crlf sip:bob@example.com/*": "hdr.append adds a missing CRLF (Kamailio glues the next header on)",
	"trailing/hdr.get(X-A)":                      "trailing whitespace of header values is trimmed",
	"trailing/$hdr(X-A)":                         "trailing whitespace of header values is trimmed",
	"trailing/pv.geti(X-A)":                      "trailing whitespace of header values is trimmed",
	"trailing/hdr.get(x-a)":                      "trailing whitespace of header values is trimmed",
}

// target is one of the two proxies under comparison.
type target struct {
	name string
	addr netip.AddrPort
}

func startTargets(t *testing.T) []target { return startTargetsWith(t, "", "") }

// startTargetsWith starts both with extra Kamailio cfg lines and extra [modules.tm] keys for siplua.
func startTargetsWith(t *testing.T, kamExtra, tmExtra string) []target {
	t.Helper()
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio app_lua module missing (Debian kamailio-lua-modules): %v", err)
		}
		t.Skipf("kamailio app_lua module missing (Debian kamailio-lua-modules): %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(kamailioCfg, "SCRIPT", path)
	cfg = strings.Replace(cfg, `cfgengine "lua"`, kamExtra+`cfgengine "lua"`, 1)
	kam := enginetest.RunKamailio(t, dir, cfg, "X-Case: ping")
	port := enginetest.FreePort(t)
	scfg := strings.Replace(strings.ReplaceAll(sipluaCfg, "PORT", strconv.Itoa(port)), "[modules.tm]\n", "[modules.tm]\n"+tmExtra, 1)
	p := enginetest.Start(t, scfg, script)
	return []target{{"kamailio", kam}, {"siplua", p.UDP}}
}

// tally counts what was compared.
type tally struct {
	scenarios, scenariosSame int
	scenariosDeliberate      int // identical but for deliberate differences
	values, valuesSame       int
	deliberate               int
	diffs                    []string
}

func (ty *tally) compare(scenario string, got [2]map[string]string) bool {
	keys := map[string]bool{}
	for _, m := range got {
		for k := range m {
			keys[k] = true
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	same, wholly, before := true, 0, len(ty.diffs)
	for _, k := range names {
		ty.values++
		kv, kok := got[0][k]
		sv, sok := got[1][k]
		if kok == sok && kv == sv {
			ty.valuesSame++
			continue
		}
		why, ok := deliberate[scenario+"/"+k]
		if !ok {
			if why, ok = deliberate[scenario+"/*"]; ok {
				ty.deliberate++
				wholly++
				continue
			}
		}
		if ok {
			ty.deliberate++
			ty.diffs = append(ty.diffs, fmt.Sprintf("(deliberate: %s) %s/%s: kamailio %q, siplua %q", why, scenario, k, show(kv, kok), show(sv, sok)))
			continue
		}
		same = false
		ty.diffs = append(ty.diffs, fmt.Sprintf("%s/%s: kamailio %q, siplua %q", scenario, k, show(kv, kok), show(sv, sok)))
	}
	if wholly > 0 {
		ty.diffs = append(ty.diffs, fmt.Sprintf("(deliberate: %s) %s: %d values differ", deliberate[scenario+"/*"], scenario, wholly))
	}
	ty.scenarios++
	if same {
		ty.scenariosSame++
		if wholly > 0 || len(ty.diffs) > before {
			ty.scenariosDeliberate++
		}
	}
	return same
}

func show(v string, ok bool) string {
	if !ok {
		return "(absent)"
	}
	return v
}

// ports replaces the ports of the run (proxy, peers) by names, so that both runs read the same.
type ports map[string]string

func (p ports) norm(s string) string {
	for port, name := range p {
		s = strings.ReplaceAll(s, ":"+port, ":"+name)
	}
	return s
}

// xv reads the X-V headers of a message into name → value.
func xv(raw string, into map[string]string, p ports) {
	for _, l := range strings.Split(raw, "\r\n") {
		if v, ok := strings.CutPrefix(l, "X-V: "); ok {
			k, val, _ := strings.Cut(v, " -> ")
			into[p.norm(k)] = p.norm(val)
		}
	}
}

// valueCase is a request sent with X-Case: values (or a write); {{...}} are filled per target.
type valueCase struct {
	name string
	raw  string
}

const base = "Via: SIP/2.0/UDP 127.0.0.1:{{CP}};branch=z9hG4bK{{BR}};rport\r\n" +
	"From: \"Alice\" <sip:alice@127.0.0.1:{{CP}}>;tag=ft{{TAG}}\r\n" +
	"Call-ID: {{CID}}@kamdiff\r\n" +
	"Max-Forwards: 70\r\n"

func req(first, to, cseq string, extra ...string) string {
	return first + "\r\n" + base + "To: " + to + "\r\nCSeq: " + cseq + "\r\n" + strings.Join(extra, "") + "Content-Length: 0\r\n\r\n"
}

var valueCases = []valueCase{
	{"options", req("OPTIONS sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 OPTIONS",
		"X-Case: values\r\n", "X-A: a1\r\n", "X-A: a2\r\n", "X-N: 12abc\r\n", "User-Agent: kd/1\r\n")},
	{"invite-indialog", req("INVITE sip:bob@127.0.0.1:{{PP}};transport=udp SIP/2.0", "\"Bob\" <sip:bob@127.0.0.1:{{PP}}>;tag=tt1", "7 INVITE",
		"X-Case: values\r\n", "Contact: <sip:alice@127.0.0.1:{{CP}}>\r\n", "X-N: -42\r\n")},
	{"tel", req("INVITE tel:+4912345;phone-context=example.com SIP/2.0", "<tel:+4912345>", "2 INVITE",
		"X-Case: values\r\n")},
	{"user-phone", req("OPTIONS sip:+4912345@127.0.0.1;user=phone SIP/2.0", "<sip:+4912345@127.0.0.1;user=phone>", "3 OPTIONS",
		"X-Case: values\r\n")},
	{"sips", req("OPTIONS sips:bob@127.0.0.1 SIP/2.0", "<sips:bob@127.0.0.1>", "1 OPTIONS", "X-Case: values\r\n")},
	{"register-star", req("REGISTER sip:127.0.0.1 SIP/2.0", "<sip:alice@127.0.0.1>", "5 REGISTER",
		"X-Case: values\r\n", "Contact: *\r\n", "Expires: 0\r\n")},
	{"register-contact", req("REGISTER sip:127.0.0.1:{{PP}} SIP/2.0", "<sip:alice@example.com>", "5 REGISTER",
		"X-Case: values\r\n", "Contact: \"A\" <sip:alice@127.0.0.1:{{CP}};ob>;expires=60, <sip:alice2@127.0.0.1>\r\n")},
	{"no-content-length", strings.Replace(req("OPTIONS sip:bob@localhost SIP/2.0", "<sip:bob@example.com>", "1 OPTIONS",
		"X-Case: values\r\n"), "Content-Length: 0\r\n", "", 1)},
	{"cseq-tab", req("OPTIONS sip:127.0.0.1:5 SIP/2.0", "<sip:bob@example.com>", "9\tOPTIONS", "X-Case: values\r\n")},
	{"lower-method", req("foo sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 foo", "X-Case: values\r\n")},
	{"message-body", strings.Replace(req("MESSAGE sip:bob@example.com SIP/2.0", "<sip:bob@example.com>", "4 MESSAGE",
		"X-Case: values\r\n", "Content-Type: text/plain\r\n"), "Content-Length: 0\r\n\r\n", "Content-Length: 5\r\n\r\nhello", 1)},
	{"trailing", req("OPTIONS sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 OPTIONS", "X-Case: values\r\n", "X-A: 17 \r\n")},
	{"upper-scheme", req("OPTIONS SIP:bob@127.0.0.1 SIP/2.0", "<SIP:bob@127.0.0.1>", "1 OPTIONS", "X-Case: values\r\n")},
	{"lower-invite", req("invite sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 invite", "X-Case: values\r\n")},
	{"register-port", req("REGISTER sip:127.0.0.1:{{PP}};transport=udp SIP/2.0", "<sip:alice@127.0.0.1:{{PP}}>", "5 REGISTER",
		"X-Case: values\r\n", "Contact: <sip:alice@127.0.0.1:{{CP}}>;expires=0\r\n")},
	{"maxfwd-not-a-number", strings.Replace(req("OPTIONS sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 OPTIONS",
		"X-Case: values\r\n"), "Max-Forwards: 70", "Max-Forwards: ten", 1)},
	{"cseq-2^31", req("OPTIONS sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "2147483648 OPTIONS", "X-Case: values\r\n")},
	{"maxfwd-zero", strings.Replace(req("OPTIONS sip:bob@127.0.0.1 SIP/2.0", "<sip:bob@127.0.0.1>", "1 OPTIONS",
		"X-Case: values\r\n"), "Max-Forwards: 70", "Max-Forwards: 0", 1)},
	{"compact", "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:{{CP}};branch=z9hG4bK{{BR}};rport\r\n" +
		"f: <sip:alice@example.com>;tag=ft{{TAG}}\r\nt: <sip:bob@127.0.0.1>\r\ni: {{CID}}@kamdiff\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 5\r\nX-Case: values\r\nm: <sip:alice@127.0.0.1>\r\nl: 0\r\n\r\n"},
}

// writeCases rewrite the request, then it is relayed to the peer: the R-URI and From/To as received there
// and the values the write gave are compared.
var writeCases = []struct{ name, ruri, to string }{
	{"setuser", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"setuser", "tel:+4912345", "<tel:+4912345>"},
	{"setuser", "tel:+4912345;phone-context=example.com", "<tel:+4912345>"},
	{"sethost", "tel:+4912345;phone-context=example.com", "<tel:+4912345>"},
	{"setuser", "sip:+4912345@example.com;user=phone", "<tel:+4912345>"},
	{"sethost", "sip:+4912345@example.com;user=phone", "<tel:+4912345>"},
	{"setuser", "sip:alice:secret@example.com:5070;transport=udp?subject=x", "<sip:bob@example.com>"},
	{"sethost", "tel:+4912345", "<tel:+4912345>"},
	{"sethost", "sip:bob@example.com:5070;transport=udp", "<sip:bob@example.com>"},
	{"seturi_bad", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"fu", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"fn", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"fU", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"fd", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"tu", "sip:bob@example.com", "\"Bob\" <sip:bob@example.com>"},
	{"tn", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"tU", "sip:bob@example.com", "sip:bob@example.com"},
	{"ru_bad", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"ru", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"rU", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"rd", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"du_bad", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"hdr_append_no_crlf", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"hdr_insert", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"hdr_remove", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"hdr_rmappend", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"hdr_remove_missing", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"setflag_branch", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"ruri_user_phone", "sip:bob@example.com", "<sip:bob@example.com>"},
	{"fn", "sip:bob@example.com", "sip:bob@example.com"},
}

func fill(raw string, vals map[string]string) string {
	for k, v := range vals {
		raw = strings.ReplaceAll(raw, "{{"+k+"}}", v)
	}
	return raw
}

// TestKamailioDifferential runs the same script on Kamailio 5.6 and siplua and compares, value by value,
// what the script sees and does, and, on the wire, what callers and callees receive in transaction
// scenarios. Totals are logged; a difference not listed as deliberate fails the test.
func TestKamailioDifferential(t *testing.T) {
	targets := startTargets(t)
	var ty tally
	// 1. values
	for _, vc := range valueCases {
		var got [2]map[string]string
		ids := map[string]string{"BR": enginetest.RandHex(6), "TAG": enginetest.RandHex(3), "CID": enginetest.RandHex(6)}
		for i, tg := range targets {
			c := enginetest.NewUDPClient(t, tg.addr)
			p := ports{strconv.Itoa(int(tg.addr.Port())): "PP", strconv.Itoa(int(c.Addr.Port())): "CP"}
			vals := map[string]string{"CP": strconv.Itoa(int(c.Addr.Port())), "PP": strconv.Itoa(int(tg.addr.Port()))}
			for k, v := range ids {
				vals[k] = v
			}
			c.Send(fill(vc.raw, vals))
			got[i] = map[string]string{}
			b, err := c.TryRecv(2 * time.Second)
			if err != nil {
				got[i]["reply"] = "none"
				continue
			}
			got[i]["reply"] = p.norm(firstLine(b))
			xv(string(b), got[i], p)
		}
		ty.compare(vc.name, got)
	}
	// 2. writes: relayed to a peer
	for _, wc := range writeCases {
		var got [2]map[string]string
		ids := map[string]string{"BR": enginetest.RandHex(6), "TAG": enginetest.RandHex(3), "CID": enginetest.RandHex(6)}
		for i, tg := range targets {
			c := enginetest.NewUDPClient(t, tg.addr)
			uas := enginetest.NewUDPClient(t, tg.addr)
			p := ports{strconv.Itoa(int(tg.addr.Port())): "PP", strconv.Itoa(int(c.Addr.Port())): "CP", strconv.Itoa(int(uas.Addr.Port())): "UP"}
			vals := map[string]string{"CP": strconv.Itoa(int(c.Addr.Port()))}
			for k, v := range ids {
				vals[k] = v
			}
			raw := fill(req("MESSAGE "+wc.ruri+" SIP/2.0", wc.to, "1 MESSAGE", "X-Case: w:"+wc.name+"\r\n",
				"X-Dst: sip:"+uas.Addr.String()+"\r\n"), vals)
			c.Send(raw)
			got[i] = map[string]string{}
			b, err := uas.TryRecv(2 * time.Second)
			if err != nil {
				got[i]["relayed"] = "none"
			} else {
				got[i]["request-line"] = p.norm(firstLine(b))
				for _, h := range []string{"From", "To", "X-Y", "X-Dst", "X-Case"} {
					got[i][h] = p.norm(strings.Join(header(b, h), ", "))
				}
				xv(string(b), got[i], p)
				uas.Send(replyTo(string(b), "200 OK", "uas"))
			}
			if r, err := c.TryRecv(2 * time.Second); err == nil {
				got[i]["reply"] = strings.TrimPrefix(firstLine(r), "SIP/2.0 ")[:3]
				xv(string(r), got[i], p) // the values, when the request was not relayed
			} else {
				got[i]["reply"] = "none"
			}
		}
		ty.compare("w:"+wc.name+" "+wc.ruri, got)
	}
	// 3. transaction scenarios
	for n, r := range runScenarios(t, targets, txScenarios) {
		ty.compare("tx:"+txScenarios[n].name, r)
	}
	t.Logf("differential: %d requests probed for values, %d writes relayed, %d transaction scenarios",
		len(valueCases), len(writeCases), len(txScenarios))
	logTally(t, &ty)
}

// runScenarios runs the transaction scenarios against both proxies at once, up to 6 scenarios at a time
// (each has its own sockets and Call-ID: they wait for timers), and returns the records in order.
func runScenarios(t *testing.T, targets []target, scs []txScenario) [][2]map[string]string {
	results := make([][2]map[string]string, len(scs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for n, sc := range scs {
		for i, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				results[n][i] = runTx(t, tg.addr, sc)
			}()
		}
	}
	wg.Wait()
	return results
}

// logTally logs the totals and each difference; one not listed as deliberate fails the test.
func logTally(t *testing.T, ty *tally) {
	t.Logf("differential totals: %d scenarios compared, %d identical (%d of them but for deliberate differences); "+
		"%d values compared, %d identical, %d deliberately different",
		ty.scenarios, ty.scenariosSame, ty.scenariosDeliberate, ty.values, ty.valuesSame, ty.deliberate)
	for _, d := range ty.diffs {
		if strings.HasPrefix(d, "(deliberate") {
			t.Logf("%s", d)
		} else {
			t.Errorf("%s", d)
		}
	}
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(string(b), "\r\n")
	return l
}

func header(raw []byte, name string) []string {
	var out []string
	for _, l := range strings.Split(string(raw), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func statusCode(b []byte) int {
	l := firstLine(b)
	if !strings.HasPrefix(l, "SIP/2.0 ") || len(l) < 11 {
		return 0
	}
	n, _ := strconv.Atoi(l[8:11])
	return n
}

// replyTo builds a callee's reply to a received request.
func replyTo(req, status, tag string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, l := range strings.Split(req, "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "record-route", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			if !strings.Contains(l, ";tag=") {
				l += ";tag=" + tag
			}
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("Contact: <sip:bob@127.0.0.1>\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

var toTag = regexp.MustCompile(`;tag=[^;>,]*`)
