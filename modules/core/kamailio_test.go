package core_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
)

// breadthExprs are evaluated by the same script (enginetest.EvalScript) in Kamailio 5.6 (app_lua) and in
// siplua, on the same request: core, kx, corex, hdr, siputils, rr, tm and tmx functions of this branch.
// Only what does not depend on the proxy's own address, ports or configuration is compared.
var breadthExprs = []string{
	`KSR.is_UDP()`, `KSR.is_TCP()`, `KSR.is_TLS()`, `KSR.is_WS()`, `KSR.is_WSX()`, `KSR.is_SCTP()`,
	`KSR.is_proto("u")`, `KSR.is_proto("tevw")`, `KSR.is_IPv4()`, `KSR.is_IPv6()`,
	`KSR.is_GET()`, `KSR.is_POST()`, `KSR.is_PUT()`, `KSR.is_DELETE()`,
	`KSR.is_myself_duri()`, `KSR.to_UDP()`, `KSR.to_TCP()`, `KSR.to_IPv4()`,
	`KSR.issflagset(3)`, `KSR.setsflag(3)`, `KSR.issflagset(3)`, `KSR.resetsflag(3)`, `KSR.issflagset(3)`,
	`KSR.setbiflag(4, 0)`, `KSR.isbflagset(4)`, `KSR.isbiflagset(4, 0)`, `KSR.resetbiflag(4, 0)`, `KSR.isbflagset(4)`,
	`KSR.set_forward_close()`, `KSR.set_forward_no_connect()`, `KSR.set_reply_close()`, `KSR.add_local_rport()`,
	`KSR.route("no_such_route")`,
	`KSR.setdsturi("sip:127.0.0.1:9;transport=tcp")`, `KSR.to_TCP()`, `KSR.to_UDP()`, `KSR.to_IPv4()`, `KSR.to_IPv6()`,
	`KSR.is_myself_duri()`, `KSR.resetdsturi()`,
	`KSR.kx.get_au()`, `KSR.kx.gete_au()`, `KSR.kx.getw_au()`, `KSR.kx.get_def("NOPE")`, `KSR.kx.get_defn("NOPE")`,
	`KSR.kx.ifdef("NOPE")`, `KSR.kx.ifndef("NOPE")`, // get_conid(): Kamailio 5.6.3 crashes on it (UDP)
	`KSR.corex.has_user_agent()`, `KSR.corex.isxflagset(2)`, `KSR.corex.setxflag(2)`, `KSR.corex.isxflagset(2)`,
	`KSR.corex.resetxflag(2)`, `KSR.corex.isxflagset(2)`, `KSR.corex.is_faked_msg()`,
	`KSR.corex.file_read("/nonexistent/siplua")`,
	`KSR.hdr.match_content("X-A", "eq", "one", "f")`, `KSR.hdr.match_content("X-A", "eq", "two", "f")`,
	`KSR.hdr.match_content("X-A", "eq", "two", "l")`, `KSR.hdr.match_content("X-A", "eq", "two", "a")`,
	`KSR.hdr.match_content("X-A", "ne", "three", "a")`, `KSR.hdr.match_content("X-A", "sw", "tw", "o")`,
	`KSR.hdr.match_content("X-A", "in", "N", "f")`, `KSR.hdr.match_content("X-A", "re", "o", "f")`,
	`KSR.hdr.match_content("X-None", "ne", "x", "a")`,
	`KSR.siputils.is_uri("sip:alice@example.com;transport=tcp")`, `KSR.siputils.is_uri("nonsense")`,
	`KSR.siputils.is_numeric("0123")`, `KSR.siputils.is_numeric("12a")`, `KSR.siputils.is_numeric("")`,
	`KSR.siputils.is_tel_number("+4930123")`, `KSR.siputils.is_tel_number("+0123")`,
	`KSR.siputils.is_alphanum("abc123")`, `KSR.siputils.is_alphanum("ab-c")`,
	`KSR.siputils.is_alphanumex("ab-c.d", "-.")`,
	`KSR.siputils.uri_param("lr")`, `KSR.siputils.uri_param("user")`, `KSR.siputils.uri_param_value("user", "phone")`,
	`KSR.siputils.uri_param_value("user", "ip")`, `KSR.siputils.uri_param_any("USER")`, `KSR.siputils.uri_param_any("gr")`,
	`KSR.siputils.is_gruu()`,
	`KSR.siputils.cmp_uri("sip:a@Example.com", "sip:a@example.com:5060")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;transport=tcp", "sip:a@example.com;transport=udp")`,
	`KSR.siputils.cmp_aor("sip:a@example.com;transport=tcp", "sip:a@EXAMPLE.com")`,
	`KSR.siputils.cmp_aor("sip:b@example.com", "sip:a@example.com")`,
	`KSR.siputils.cmp_aor("sip:a@example.com", "sip:a@example.com:5060")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;transport=tcp", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;foo=1", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:A@example.com", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;user=phone", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;maddr=1.2.3.4", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;lr", "sip:a@example.com")`,
	`KSR.siputils.cmp_uri("sip:a@example.com;Transport=TCP", "sip:a@example.com;transport=tcp")`,
	`KSR.siputils.cmp_uri("sip:a@example.com:5060", "sip:a@example.com:5060")`,
	`KSR.siputils.cmp_aor("sip:A@example.com", "sip:a@example.com")`,
	`KSR.siputils.cmp_hdr_name("v", "Via")`, `KSR.siputils.cmp_hdr_name("From", "To")`,
	`KSR.siputils.hdr_date_check(60)`,
	`KSR.siputils.add_uri_param("x=1")`, `KSR.kx.get_ruri()`, `KSR.siputils.uri_param_rm("user")`, `KSR.kx.get_ruri()`,
	`KSR.rr.next_hop_route()`,
	`KSR.tm.t_get_branch_index()`, `KSR.tm.t_lookup_request()`,
	`KSR.tmx.t_is_request_route()`, `KSR.tmx.t_is_failure_route()`, `KSR.tmx.t_flush_flags()`,
	`KSR.tm.t_grep_status(200)`, `KSR.tm.t_is_expired()`, `KSR.tm.t_retransmit_reply()`,
	`KSR.is_myself_nhuri()`, `KSR.is_myself_suri()`,
	`KSR.x.modf("is_numeric", "123")`, `KSR.x.modf("is_numeric", "12a")`, `KSR.x.probe()`,
}

var breadthHeaders = []string{
	"X-A: one", "X-A:  two ",
	`Authorization: Digest username="alice@example.com", realm="r", nonce="n", uri="sip:x", response="0"`,
	"Date: Sat, 13 Nov 2010 23:29:00 GMT",
	"User-Agent: conformance",
}

const breadthKamailioCfg = `#!KAMAILIO
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
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

// TestBreadthKamailio: every expression of breadthExprs gives the same Lua type and value in siplua as in
// the real Kamailio 5.6 running the same script on the same request.
func TestBreadthKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio app_lua module missing: %v", err)
		}
		t.Skipf("kamailio app_lua module missing: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(enginetest.EvalScript), 0o644); err != nil {
		t.Fatal(err)
	}
	kam := enginetest.RunKamailio(t, dir, strings.Replace(breadthKamailioCfg, "SCRIPT", script, 1))
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.tmx]\n[modules.rr]\n[modules.siputils]\n[modules.corex]\n",
		enginetest.EvalScript)

	const ruri = "sip:carol@example.com;user=phone;lr"
	want := enginetest.NewUDPClient(t, kam).Eval("INVITE", ruri, breadthHeaders, breadthExprs...)
	got := p.UDPClient(t).Eval("INVITE", ruri, breadthHeaders, breadthExprs...)
	if len(got) != len(breadthExprs) || len(want) != len(breadthExprs) {
		t.Fatalf("results: siplua %d, kamailio %d, expressions %d", len(got), len(want), len(breadthExprs))
	}
	for i, e := range breadthExprs {
		if got[i] != want[i] {
			t.Errorf("%s: siplua %s, kamailio %s", e, got[i], want[i])
		}
	}
}
