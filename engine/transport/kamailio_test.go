package transport_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// kamailioTLSCfg is a Kamailio 5.6 relay with a TLS socket: initial requests are record-routed and sent to
// NEXTHOP ($du, "" = by the R-URI), in-dialog ones loose-routed. tls.cfg verifies the peer's certificate
// against the test CA on outgoing connections.
const kamailioTLSCfg = `#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
enable_tls=yes
auto_aliases=no
listen=tls:127.0.0.1:%d
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
modparam("tls", "config", "%s/tls.cfg")
request_route {
	if (is_method("OPTIONS") && $rU == "probe") { sl_send_reply("200", "OK"); exit; }
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
	record_route();
	%s
	if (!t_relay()) { sl_reply_error(); }
}
`

const kamailioTLSConf = `[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = %[1]s/key.pem
certificate = %[1]s/cert.pem
ca_list = %[1]s/ca.pem

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = %[1]s/key.pem
certificate = %[1]s/cert.pem
ca_list = %[1]s/ca.pem
`

// relayScript relays initial requests to NEXTHOP (when set) with Record-Route, in-dialog ones by route.
const relayScript = `
local nexthop = %q
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() return 1 end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	KSR.rr.record_route()
	if nexthop ~= "" then KSR.setdsturi(nexthop) end
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end
`

func startKamailioTLS(t *testing.T, pk *pki, nexthop string) (udp, tlsAddr string) {
	t.Helper()
	enginetest.NeedProgram(t, "kamailio", "kamailio")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"); err != nil {
		enginetest.NeedProgram(t, "kamailio-tls-modules-missing", "kamailio-tls-modules")
	}
	dir := t.TempDir()
	for name, text := range pk.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.cfg"), []byte(fmt.Sprintf(kamailioTLSConf, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := enginetest.FreePort(t)
	setDU := ""
	if nexthop != "" {
		setDU = `$du = "` + nexthop + `";`
	}
	a := enginetest.RunKamailio(t, dir, fmt.Sprintf(kamailioTLSCfg, port, dir, setDU))
	return a.String(), "127.0.0.1:" + strconv.Itoa(port)
}

func startRelay(t *testing.T, pk *pki, nexthop, extraTLS string) *enginetest.Proxy {
	t.Helper()
	files := map[string]string{"script.lua": fmt.Sprintf(relayScript, nexthop)}
	for k, v := range pk.files {
		files[k] = v
	}
	return enginetest.StartFiles(t, "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\"]\n"+tlsTable+extraTLS+
		"[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.siputils]\n", files)
}

func sippCall(t *testing.T, proxy string, uas *enginetest.SIPp) {
	t.Helper()
	csv := filepath.Join(t.TempDir(), "callee.csv")
	if err := os.WriteFile(csv, []byte("SEQUENTIAL\nbob;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uac := enginetest.StartSIPp(t, "uac", filepath.Join("testdata", "sipp", "call-uac.xml"), proxy,
		"-m", "1", "-key", "target", uas.Addr(), "-inf", csv)
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatalf("SIPp UAC: %v", err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatalf("SIPp UAS: %v", err)
	}
}

// TestKamailioToSiplua: SIPp UAC (UDP) → Kamailio → TLS → siplua → SIPp UAS (UDP); the call completes
// (ACK and BYE loose-routed through both, over the same TLS connection).
func TestKamailioToSiplua(t *testing.T) {
	pk := newPKI(t)
	p := startRelay(t, pk, "", "")
	kam, _ := startKamailioTLS(t, pk, "sip:"+p.Addr(engine.TLS).String()+";transport=tls")
	uas := startUAS(t)
	sippCall(t, kam, uas)
}

// TestSipluaToKamailio: SIPp UAC → siplua → TLS (Kamailio's certificate verified against ca_list) →
// Kamailio → SIPp UAS; the call completes.
func TestSipluaToKamailio(t *testing.T) {
	pk := newPKI(t)
	_, kamTLS := startKamailioTLS(t, pk, "")
	p := startRelay(t, pk, "sip:"+kamTLS+";transport=tls", "ca_list = \"ca.pem\"\n")
	uas := startUAS(t)
	sippCall(t, p.UDP.String(), uas)
}
