package tm_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// asyncCmpScript runs unchanged in Kamailio 5.6 (app_lua) and in siplua: every INVITE is suspended, its
// ids kept in htable "a"; a MESSAGE continues it on "resume", which relays it to its R-URI.
const asyncCmpScript = `
function ksr_request_route()
	if KSR.hdr.get("X-Fn") == "ping" then KSR.sl.sl_send_reply(200, "Pong") return 1 end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then
		if KSR.tmx.t_suspend() < 0 then KSR.sl.sl_send_reply(500, "not suspended") return 1 end
		KSR.htable.sht_seti("a", "idx", KSR.pv.get("$T(id_index)"))
		KSR.htable.sht_seti("a", "lbl", KSR.pv.get("$T(id_label)"))
		KSR.x.exit()
	end
	if KSR.is_MESSAGE() then
		local rc = KSR.tmx.t_continue(KSR.htable.sht_get("a", "idx"), KSR.htable.sht_get("a", "lbl"), "resume")
		KSR.sl.sl_send_reply(200, "continue " .. rc)
	end
end
function resume(ev)
	KSR.tm.t_relay()
end
`

const asyncKamailioCfg = `#!KAMAILIO
debug=1
log_stderror=yes
children=2
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
loadmodule "htable.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", 1000)
modparam("htable", "htable", "a=>size=4;")
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

// asyncFlow runs the suspend/continue flows against the proxy at addr and returns what the caller and the
// UAS saw, one line per event, for comparison between Kamailio and siplua.
func asyncFlow(t *testing.T, addr netip.AddrPort) []string {
	var seen []string
	uac, uas, ctl := enginetest.NewUDPClient(t, addr), enginetest.NewUDPClient(t, addr), enginetest.NewUDPClient(t, addr)
	// replies reads the caller's replies of one call (other calls' retransmissions skipped) until n final
	// ones came, acknowledging a negative final reply to the INVITE
	replies := func(inv string, n int) {
		callID := header([]byte(inv), "Call-ID")[0]
		for n > 0 {
			b, err := uac.TryRecv(3 * time.Second)
			if err != nil {
				seen = append(seen, "caller: nothing")
				return
			}
			if header(b, "Call-ID")[0] != callID {
				continue
			}
			cseq := header(b, "CSeq")[0]
			seen = append(seen, "caller: "+startLine(b)+" ("+cseq+")")
			if statusCode(b) >= 200 {
				n--
				if statusCode(b) >= 300 && strings.HasSuffix(cseq, "INVITE") {
					uac.Send(ackOf(inv, b))
				}
			}
		}
	}
	cont := func() {
		ctl.Send(ctl.Request("MESSAGE", "sip:ctl@127.0.0.1"))
		seen = append(seen, "continue: "+startLine(ctl.RecvRaw(3*time.Second)))
	}
	// 1. suspend, continue, the UAS answers 200
	inv := uac.Request("INVITE", "sip:bob@"+uas.Addr.String())
	uac.Send(inv)
	seen = append(seen, "caller: "+startLine(uac.RecvRaw(3*time.Second)))
	if _, err := uas.TryRecv(300 * time.Millisecond); err == nil {
		seen = append(seen, "uas: got the INVITE while suspended")
	}
	cont()
	got := recvRequest(t, uas, "INVITE", 3*time.Second)
	seen = append(seen, "uas: "+strings.Replace(startLine(got), uas.Addr.String(), "UAS", 1))
	uas.Send(replyTo(string(got), "200 OK", "u1"))
	replies(inv, 1)
	cont()
	// 2. suspend, CANCEL: a final reply to each
	inv = uac.Request("INVITE", "sip:bob@"+uas.Addr.String())
	uac.Send(inv)
	seen = append(seen, "caller: "+startLine(uac.RecvRaw(3*time.Second)))
	uac.Send(cancelOf(inv))
	replies(inv, 2)
	// 3. suspend, nobody continues: fr_timer
	inv = uac.Request("INVITE", "sip:bob@"+uas.Addr.String())
	uac.Send(inv)
	replies(inv, 1)
	return seen
}

// ackOf is the ACK of a negative final reply to inv.
func ackOf(inv string, reply []byte) string {
	to := header(reply, "To")[0]
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(inv, "\r\n", "\n"), "\n")
	b.WriteString(strings.Replace(lines[0], "INVITE", "ACK", 1) + "\r\n")
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "from", "call-id", "max-forwards":
			b.WriteString(l + "\r\n")
		case "cseq":
			b.WriteString("CSeq: " + strings.Replace(strings.TrimSpace(v), "INVITE", "ACK", 1) + "\r\n")
		}
	}
	b.WriteString("To: " + to + "\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// TestSuspendKamailio: the same script and flows through Kamailio 5.6 and siplua give the same replies:
// 100 for a suspended INVITE and nothing at the UAS, t_continue 1 then -1, the UAS's 200 to the caller;
// CANCEL of a suspended INVITE: 200 + 487; a suspended INVITE nobody continues: 408 after fr_timer.
func TestSuspendKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio app_lua module missing: %v", err)
		}
		t.Skipf("kamailio app_lua module missing: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(asyncCmpScript), 0o644); err != nil {
		t.Fatal(err)
	}
	kam := enginetest.RunKamailio(t, dir, strings.Replace(asyncKamailioCfg, "SCRIPT", script, 1), "X-Fn: ping")
	want := asyncFlow(t, kam)

	port := enginetest.FreePort(t)
	p := enginetest.Start(t, "[core]\nlisten = [\"udp:127.0.0.1:"+strconv.Itoa(port)+"\"]\n"+
		"[modules.tm]\nfr_timer = 1000\n[modules.tmx]\n[modules.sl]\n[modules.htable.tables.a]\n", asyncCmpScript)
	got := asyncFlow(t, p.UDP)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("siplua:\n  %s\nkamailio:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// bfailCmpScript: the branch failure route records what it sees in htable "a"; a MESSAGE reads it back.
const bfailCmpScript = `
function ksr_request_route()
	if KSR.hdr.get("X-Fn") == "ping" then KSR.sl.sl_send_reply(200, "Pong") return 1 end
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_MESSAGE() then
		KSR.sl.sl_send_reply(200, KSR.htable.sht_get("a", "seen") or "nothing")
		return 1
	end
	KSR.tm.t_on_branch_failure("bfail")
	KSR.tm.t_relay()
end
function bfail(ev)
	KSR.htable.sht_sets("a", "seen", "arg=" .. tostring(ev) .. " code=" .. KSR.tm.t_get_status_code() ..
		" method=" .. KSR.kx.get_method() .. " ruser=" .. KSR.kx.gete_ruser() ..
		" index=" .. KSR.tm.t_get_branch_index() .. " T_reply_code=" .. tostring(KSR.pv.get("$T_reply_code")) ..
		" failure_route=" .. KSR.tmx.t_is_failure_route() .. " reuse=" .. KSR.tmx.t_reuse_branch() ..
		" ruri=" .. KSR.kx.get_ruri())
end
`

// TestBranchFailureKamailio: the branch failure route (t_on_branch_failure) sees the same things in
// Kamailio 5.6 and in siplua: no argument, the request (method, R-URI user), the reply code and branch.
func TestBranchFailureKamailio(t *testing.T) {
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio app_lua module missing: %v", err)
		}
		t.Skipf("kamailio app_lua module missing: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(bfailCmpScript), 0o644); err != nil {
		t.Fatal(err)
	}
	kam := enginetest.RunKamailio(t, dir, strings.Replace(asyncKamailioCfg, "SCRIPT", script, 1), "X-Fn: ping")
	p := enginetest.Start(t, "[modules.tm]\n[modules.tmx]\n[modules.sl]\n[modules.htable.tables.a]\n", bfailCmpScript)
	flow := func(addr netip.AddrPort) string {
		uac, uas := enginetest.NewUDPClient(t, addr), enginetest.NewUDPClient(t, addr)
		uac.Send(uac.Request("INVITE", "sip:bob@"+uas.Addr.String()))
		inv := recvRequest(t, uas, "INVITE", 3*time.Second)
		answer(t, uas, inv, "486 Busy Here")
		if final, _ := recvFinal(t, uac, 3*time.Second); statusCode(final) != 486 {
			t.Errorf("caller got %q", startLine(final))
		}
		uac.Send(uac.Request("MESSAGE", "sip:x@127.0.0.1"))
		return strings.ReplaceAll(startLine(uac.RecvRaw(3*time.Second)), uas.Addr.String(), "UAS")
	}
	want, got := flow(kam), flow(p.UDP)
	t.Logf("kamailio: %s", want)
	if got != want {
		t.Errorf("siplua:   %s\nkamailio: %s", got, want)
	}
}
