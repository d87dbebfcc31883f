package dialog_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/dialog"
)

// flagScript tracks INVITEs with dlg_flag 5 instead of dlg_manage, and relays to the UAS in UAS.
const flagScript = `
function ksr_request_route()
	if KSR.is_INVITE() and KSR.siputils.has_totag() < 0 then
		if TRACK == "flag" then KSR.setflag(5) else KSR.dialog.dlg_manage() end
		KSR.rr.record_route()
	end
	KSR.setdsturi(UAS)
	KSR.tm.t_relay()
end
`

// call sends an INVITE through p to a UAS answering code and returns the final reply's first line.
func call(t *testing.T, p *enginetest.Proxy) string {
	t.Helper()
	c := p.UDPClient(t)
	c.Send(c.Request("INVITE", "sip:bob@example.com", "Contact: <sip:alice@"+c.Addr.String()+">"))
	return strings.SplitN(string(c.RecvFinal(5*time.Second)), "\r\n", 2)[0]
}

func TestDialogFailedAndFlag(t *testing.T) {
	for _, tc := range []struct {
		name, track string
		code        int
		wantList    int
		wantFailed  int64
	}{
		{"486 fails the dialog", "manage", 486, 0, 1},
		{"200 confirms it", "manage", 200, 1, 0},
		{"dlg_flag tracks without dlg_manage", "flag", 200, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := enginetest.StartUAS(t, false, func(raw string) int { return tc.code })
			p := enginetest.Start(t, baseConfig+"[modules.dialog]\ndlg_flag = 5\n",
				"UAS = 'sip:"+uas.Addr.String()+"'\nTRACK = '"+tc.track+"'\n"+flagScript)
			d := dlgOf(t, p)
			if got := call(t, p); !strings.Contains(got, " "+strconv.Itoa(tc.code)+" ") {
				t.Fatalf("final reply %q, want %d", got, tc.code)
			}
			waitFor(t, "the dialog table", 3*time.Second, func() bool {
				return len(d.List("")) == tc.wantList && d.Stats()["failed_dialogs"] == tc.wantFailed
			})
			if tc.wantList == 1 {
				if l := d.List(""); l[0]["state"] != dialog.StateConfirmedNA || l[0]["to_tag"] != "uas" {
					t.Errorf("dialog: %v", l[0])
				}
			}
		})
	}
}

// TestDialogRedisBackend: a dialog confirmed on one node is in Redis; a node started afterwards (a
// restart, or another node) loads it, and it ends there with dlg.terminate.
func TestDialogRedisBackend(t *testing.T) {
	r := enginetest.StartRedis(t)
	uas := enginetest.StartUAS(t, false, nil)
	cfg := baseConfig + "[modules.dialog]\nbackend = \"redis\"\nredis_url = \"" + r.URL() + "\"\n"
	p1 := enginetest.Start(t, cfg, "UAS = 'sip:"+uas.Addr.String()+"'\nTRACK = 'manage'\n"+flagScript)
	if got := call(t, p1); !strings.Contains(got, " 200 ") {
		t.Fatalf("final reply %q", got)
	}
	d1 := dlgOf(t, p1)
	waitFor(t, "the dialog on node 1", 3*time.Second, func() bool { return len(d1.List("")) == 1 })
	callID := d1.List("")[0]["call-id"].(string)
	var d2 *dialog.Dialog
	waitFor(t, "the dialog on node 2", 5*time.Second, func() bool {
		p2 := enginetest.Start(t, cfg, "UAS = 'x'\nTRACK = 'manage'\n"+flagScript)
		d2 = dlgOf(t, p2)
		l := d2.List("")
		return len(l) == 1 && l[0]["call-id"] == callID && l[0]["state"] == dialog.StateConfirmedNA
	})
	if err := d2.Terminate(callID, "", ""); err != nil {
		t.Fatal(err)
	}
	// node 2 sent the BYE to the callee (the UAS) and removed the dialog from Redis
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case req := <-uas.Got:
			got = strings.HasPrefix(req.Raw, "BYE ") && strings.Contains(req.Raw, callID)
		case <-deadline:
			t.Fatal("the UAS got no BYE from node 2")
		}
	}
	waitFor(t, "the dialog gone from redis", 5*time.Second, func() bool {
		p3 := enginetest.Start(t, cfg, "UAS = 'x'\nTRACK = 'manage'\n"+flagScript)
		return len(dlgOf(t, p3).List("")) == 0
	})
}

// TestDialogKeepalive: with ka_interval and dlg_set_property("ka-dst"), the callee gets in-dialog OPTIONS
// (the dialog's tags, the next CSeq); when it answers 481 the dialog ends with a BYE to both sides.
func TestDialogKeepalive(t *testing.T) {
	var answer481 atomic.Bool
	uas := enginetest.StartUAS(t, false, func(raw string) int {
		if strings.HasPrefix(raw, "OPTIONS ") && answer481.Load() {
			return 481
		}
		return 200
	})
	script := strings.Replace(flagScript, "KSR.dialog.dlg_manage() end",
		"KSR.dialog.dlg_manage(); KSR.dialog.dlg_set_property('ka-dst') end", 1)
	p := enginetest.Start(t, baseConfig+"[modules.dialog]\nka_interval = 1\n",
		"UAS = 'sip:"+uas.Addr.String()+"'\nTRACK = 'manage'\n"+script)
	d := dlgOf(t, p)
	c := p.UDPClient(t)
	c.Send(c.Request("INVITE", "sip:bob@example.com", "Contact: <sip:alice@"+c.Addr.String()+">"))
	if got := string(c.RecvFinal(5 * time.Second)); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("final reply %q", got)
	}
	callID := d.List("")[0]["call-id"].(string)
	next := func(method string) string {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case r := <-uas.Got:
				if strings.HasPrefix(r.Raw, method+" ") {
					return r.Raw
				}
			case <-deadline:
				t.Fatalf("the callee got no %s", method)
			}
		}
	}
	opt := next("OPTIONS")
	if !strings.Contains(opt, "Call-ID: "+callID) || !strings.Contains(opt, ";tag=uas") || !strings.Contains(opt, "CSeq: 2 OPTIONS") {
		t.Errorf("keepalive:\n%s", opt)
	}
	answer481.Store(true)
	bye := next("BYE")
	if !strings.Contains(bye, "Call-ID: "+callID) {
		t.Errorf("BYE to the callee:\n%s", bye)
	}
	// the caller gets its BYE too (From: the callee's To with its tag)
	for deadline := time.Now().Add(5 * time.Second); ; {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("the caller got no BYE: %v", err)
		}
		if s := string(b); strings.HasPrefix(s, "BYE ") {
			if !strings.Contains(s, "From: <sip:bob@example.com>;tag=uas") {
				t.Errorf("BYE to the caller:\n%s", s)
			}
			break
		}
	}
	waitFor(t, "no dialog", 3*time.Second, func() bool { return len(d.List("")) == 0 })
}

// TestDialogByeFromScript: dlg_bye("all") in an in-dialog request's route sends a BYE to both sides and
// ends the dialog; $dlg(state) and $dlg_var are read in that route.
func TestDialogByeFromScript(t *testing.T) {
	uas := enginetest.StartUAS(t, false, nil)
	script := `
function ksr_request_route()
	if KSR.is_method("INFO") then
		KSR.hdr.append_to_reply("X-State: " .. KSR.pv.get("$dlg(state)") .. " " .. KSR.pv.get("$dlg_var(who)") .. "\r\n")
		KSR.hdr.append_to_reply("X-Bye: " .. KSR.dialog.dlg_bye("all") .. "\r\n")
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	KSR.dialog.dlg_manage()
	KSR.pv.sets("$dlg_var(who)", "alice")
	KSR.setdsturi(UAS)
	KSR.tm.t_relay()
end
`
	p := enginetest.Start(t, baseConfig+"[modules.hdr]\n[modules.dialog]\n", "UAS = 'sip:"+uas.Addr.String()+"'\n"+script)
	d := dlgOf(t, p)
	c := p.UDPClient(t)
	inv := c.Request("INVITE", "sip:bob@example.com", "Contact: <sip:alice@"+c.Addr.String()+">")
	c.Send(inv)
	if got := string(c.RecvFinal(5 * time.Second)); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("final reply %q", got)
	}
	info := strings.Replace(inv, "INVITE sip:bob@example.com SIP/2.0", "INFO sip:bob@example.com SIP/2.0", 1)
	info = strings.Replace(info, "CSeq: 1 INVITE", "CSeq: 2 INFO", 1)
	info = strings.Replace(info, "To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=uas", 1)
	info = strings.Replace(info, ";branch=z9hG4bK", ";branch=z9hG4bKinfo", 1)
	c.Send(info)
	var sawBye, sawOK bool
	for deadline := time.Now().Add(5 * time.Second); !(sawBye && sawOK); {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("caller: BYE %v, 200 to INFO %v: %v", sawBye, sawOK, err)
		}
		s := string(b)
		switch {
		case strings.HasPrefix(s, "BYE "):
			sawBye = true
		case strings.HasPrefix(s, "SIP/2.0 200") && strings.Contains(s, "INFO"):
			sawOK = true
			if !strings.Contains(s, "X-State: 3 alice") || !strings.Contains(s, "X-Bye: 1") {
				t.Errorf("INFO reply:\n%s", s)
			}
		}
	}
	for deadline := time.After(5 * time.Second); ; {
		select {
		case r := <-uas.Got:
			if strings.HasPrefix(r.Raw, "BYE ") {
				waitFor(t, "no dialog", 3*time.Second, func() bool { return len(d.List("")) == 0 })
				return
			}
		case <-deadline:
			t.Fatal("the callee got no BYE")
		}
	}
}
