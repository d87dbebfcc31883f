package dialog_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/dialog"
)

const baseConfig = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n"

// script relays like Kamailio's example and tracks every INVITE as a dialog with a profile, a dialog
// variable and a lifetime of TIMEOUT seconds.
const script = `
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			KSR.tm.t_relay()
			return 1
		end
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
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		if KSR.dialog.dlg_manage() < 0 then KSR.err("dlg_manage failed\n") end
		KSR.dialog.set_dlg_profile("caller", "alice")
		KSR.pv.sets("$dlg_var(account)", "acme")
		KSR.dialog.dlg_set_timeout(TIMEOUT)
	end
	KSR.tm.t_relay()
end
`

func dlgOf(t testing.TB, p *enginetest.Proxy) *dialog.Dialog {
	t.Helper()
	inst, ok := p.E.Module("dialog")
	if !ok {
		t.Fatal("dialog module not loaded")
	}
	return inst.(*dialog.Dialog)
}

// waitFor polls cond every 20 ms until it holds or the time is up.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rpc(t *testing.T, d *dialog.Dialog, name string, args ...string) any {
	t.Helper()
	for _, c := range d.RPC() {
		if c.Name == name {
			v, err := c.Fn(args)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// TestDialogTimeoutByeBothWays: a SIPp call through siplua with dlg_manage; dlg.list shows it confirmed,
// with its profile and variable; it survives a script reload; its 2 s lifetime ends it with a BYE to the
// caller and one to the callee (both SIPp scenarios wait for that BYE and answer it).
func TestDialogTimeoutByeBothWays(t *testing.T) {
	cfg := baseConfig + "[modules.dialog]\nsend_bye = true\nprofiles_with_value = [\"caller\"]\n"
	p := enginetest.Start(t, cfg, "TIMEOUT = 2\n"+script)
	d := dlgOf(t, p)
	uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/uas-bye-in.xml", "-m", "1")
	uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/uac-bye-in.xml", p.UDP.String(), "-m", "1",
		"-key", "target", uas.Addr(), "-inf", enginetest.SIPpInjection(t, "bob"))
	var list []map[string]any
	waitFor(t, "a confirmed dialog", 5*time.Second, func() bool {
		list = rpc(t, d, "dlg.list").([]map[string]any)
		return len(list) == 1 && list[0]["state"] == dialog.StateConfirmed
	})
	dl := list[0]
	if dl["to_tag"] == "" || !strings.Contains(fmt.Sprint(dl["callee_contact"]), strconv.Itoa(uas.Port)) ||
		!strings.Contains(fmt.Sprint(dl["caller_contact"]), strconv.Itoa(uac.Port)) || dl["timeout"] != 2 {
		t.Errorf("dlg.list entry: %v", dl)
	}
	if fmt.Sprint(dl["variables"]) != "map[account:acme]" || !strings.Contains(fmt.Sprint(dl["profiles"]), "caller alice") {
		t.Errorf("variables/profiles: %v %v", dl["variables"], dl["profiles"])
	}
	if n := d.ProfileSize("caller", "alice"); n != 1 {
		t.Errorf("profile caller/alice size = %d, want 1", n)
	}
	if _, err := p.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if n := len(d.List("")); n != 1 {
		t.Fatalf("after reload: %d dialogs, want 1", n)
	}
	if err := uac.Wait(15 * time.Second); err != nil {
		t.Fatalf("caller got no BYE: %v", err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatalf("callee got no BYE: %v", err)
	}
	if n := len(d.List("")); n != 0 {
		t.Errorf("after the timeout: %d dialogs, want 0", n)
	}
	st := rpc(t, d, "dlg.stats").(map[string]int64)
	if st["expired_dialogs"] != 1 || st["active_dialogs"] != 0 || st["processed_dialogs"] != 1 {
		t.Errorf("dlg.stats = %v", st)
	}
	if n := d.ProfileSize("caller", ""); n != 0 {
		t.Errorf("profile size after the end = %d", n)
	}
}

// TestDialogEndsOnBye: a call hung up by the caller ends its dialog (no timeout, no BYE from the proxy).
func TestDialogEndsOnBye(t *testing.T) {
	cfg := baseConfig + "[modules.dialog]\nsend_bye = true\nprofiles_with_value = [\"caller\"]\n"
	p := enginetest.Start(t, cfg, "TIMEOUT = 60\n"+script)
	d := dlgOf(t, p)
	uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/call-uas.xml", "-m", "3")
	uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/call-uac.xml", p.UDP.String(), "-m", "3", "-r", "10",
		"-key", "target", uas.Addr(), "-inf", enginetest.SIPpInjection(t, "bob"))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no dialog left", 3*time.Second, func() bool { return len(d.List("")) == 0 })
	st := d.Stats()
	if st["processed_dialogs"] != 3 || st["active_dialogs"] != 0 || st["expired_dialogs"] != 0 || st["failed_dialogs"] != 0 {
		t.Errorf("dlg.stats = %v", st)
	}
}
