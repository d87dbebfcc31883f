package tmx_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const tmxConfig = "[modules.tm]\n[modules.tmx]\n[modules.sl]\n[modules.corex]\n"

// tmxScript relays INVITEs (to X-Dst, or forked to X-Dst and X-Dst2) with an onreply and a failure route;
// a MESSAGE runs the expression of its X-Do header on another transaction and answers with the result.
const tmxScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_MESSAGE() then
		local f = loadstring("return " .. KSR.hdr.get("X-Do"))
		KSR.sl.sl_send_reply(200, "rc " .. tostring(f()))
		return 1
	end
	if KSR.hdr.is_present("X-Drop") > 0 then
		KSR.tm.t_newtran()
		KSR.info("t_drop rc=" .. KSR.tmx.t_drop())
		return 1
	end
	KSR.setdsturi(KSR.hdr.get("X-Dst"))
	if KSR.hdr.is_present("X-Dst2") > 0 then KSR.corex.append_branch_uri(KSR.hdr.get("X-Dst2")) end
	KSR.tm.t_on_reply("onreply")
	KSR.tm.t_on_failure("failed")
	KSR.tm.t_relay()
	KSR.setflag(5)
	if KSR.hdr.is_present("X-Flush") > 0 then KSR.tmx.t_flush_flags() end
	KSR.info("request route is_request_route=" .. KSR.tmx.t_is_request_route())
end
function onreply()
	if KSR.hdr.is_present("X-Cancel-This") > 0 then
		KSR.info("cancel this rc=" .. KSR.tmx.t_cancel_branches("this"))
	end
end
function failed()
	KSR.info("failure flag5=" .. tostring(KSR.isflagset(5)))
end
`

type rig struct {
	p    *enginetest.Proxy
	uac  *enginetest.Client
	uas  []*enginetest.Client
	ctrl *enginetest.Client
}

func start(t *testing.T) *rig {
	port := enginetest.FreePort(t)
	proxy := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	r := &rig{}
	for range 2 {
		r.uas = append(r.uas, enginetest.NewUDPClient(t, proxy))
	}
	r.p = enginetest.Start(t, fmt.Sprintf("[core]\nlisten = [\"udp:127.0.0.1:%d\"]\n", port)+tmxConfig, tmxScript)
	r.uac, r.ctrl = r.p.UDPClient(t), r.p.UDPClient(t)
	return r
}

// do runs a Lua expression in a MESSAGE's route and returns its result.
func (r *rig) do(t *testing.T, expr string) string {
	t.Helper()
	r.ctrl.Send(r.ctrl.Request("MESSAGE", "sip:ctl@127.0.0.1", "X-Do: "+expr))
	return strings.TrimPrefix(line(r.ctrl.RecvRaw(2*time.Second)), "SIP/2.0 200 rc ")
}

func line(b []byte) string { l, _, _ := strings.Cut(string(b), "\r\n"); return l }

func hdr(raw []byte, name string) string {
	for _, l := range strings.Split(string(raw), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func recv(t *testing.T, c *enginetest.Client, prefix string) []byte {
	t.Helper()
	for {
		b, err := c.TryRecv(2 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %q at %s: %v", prefix, c.Addr, err)
		}
		if strings.HasPrefix(string(b), prefix) {
			return b
		}
	}
}

func reply(req []byte, status string, extra ...string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, l := range strings.Split(string(req), "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(k) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=uas\r\n")
		}
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// TestReplyAndCancelByCallID: t_reply_callid answers a pending INVITE from another request's route;
// t_cancel_callid cancels one (the UAS gets a CANCEL, its 487 reaches the caller); unknown ids give -1.
func TestReplyAndCancelByCallID(t *testing.T) {
	r := start(t)
	inv := r.uac.Request("INVITE", "sip:bob@127.0.0.1", "X-Dst: sip:"+r.uas[0].Addr.String())
	r.uac.Send(inv)
	got := recv(t, r.uas[0], "INVITE ")
	cid := hdr(got, "Call-ID")
	if rc := r.do(t, `KSR.tmx.t_reply_callid("`+cid+`", "1", 486, "Busy From Script")`); rc != "1" {
		t.Fatalf("t_reply_callid rc %s", rc)
	}
	if l := line(recv(t, r.uac, "SIP/2.0 4")); l != "SIP/2.0 486 Busy From Script" {
		t.Errorf("caller got %q", l)
	}
	if rc := r.do(t, `KSR.tmx.t_reply_callid("nope", "1", 486, "x")`); rc != "-1" {
		t.Errorf("unknown Call-ID: rc %s", rc)
	}

	inv = r.uac.Request("INVITE", "sip:bob@127.0.0.1", "X-Dst: sip:"+r.uas[1].Addr.String())
	r.uac.Send(inv)
	got = recv(t, r.uas[1], "INVITE ")
	r.uas[1].Send(reply(got, "180 Ringing"))
	recv(t, r.uac, "SIP/2.0 180")
	cid = hdr(got, "Call-ID")
	if rc := r.do(t, `KSR.tmx.t_cancel_callid("`+cid+`", "1", 0)`); rc != "1" {
		t.Fatalf("t_cancel_callid rc %s", rc)
	}
	c := recv(t, r.uas[1], "CANCEL ")
	r.uas[1].Send(reply(c, "200 OK"))
	r.uas[1].Send(reply(got, "487 Request Terminated"))
	if l := line(recv(t, r.uac, "SIP/2.0 4")); l != "SIP/2.0 487 Request Terminated" {
		t.Errorf("caller got %q", l)
	}
}

// TestCancelThisBranch: t_cancel_branches("this") in the onreply route cancels the branch the reply came
// on, not the other one.
func TestCancelThisBranch(t *testing.T) {
	r := start(t)
	r.uac.Send(r.uac.Request("INVITE", "sip:bob@127.0.0.1", "X-Dst: sip:"+r.uas[0].Addr.String(),
		"X-Dst2: sip:"+r.uas[1].Addr.String()))
	a, b := recv(t, r.uas[0], "INVITE "), recv(t, r.uas[1], "INVITE ")
	r.uas[0].Send(reply(a, "180 Ringing"))
	r.uas[1].Send(reply(b, "180 Ringing", "X-Cancel-This: 1"))
	recv(t, r.uas[1], "CANCEL ")
	if got, err := r.uas[0].TryRecv(300 * time.Millisecond); err == nil {
		t.Errorf("the other branch got %q", line(got))
	}
	if !strings.Contains(r.p.Log.String(), "cancel this rc=1") {
		t.Errorf("t_cancel_branches rc not 1")
	}
}

// TestDropAndFlush: t_drop ends a transaction without any answer (rc 0); t_flush_flags makes a flag set
// after t_relay the transaction's (seen in the failure route); t_is_request_route is 1 in the request route.
func TestDropAndFlush(t *testing.T) {
	r := start(t)
	r.uac.Send(r.uac.Request("OPTIONS", "sip:bob@127.0.0.1", "X-Drop: 1"))
	if got, err := r.uac.TryRecv(300 * time.Millisecond); err == nil {
		t.Errorf("a dropped transaction answered %q", line(got))
	}
	for i, flush := range []bool{false, true} {
		extra := []string{"X-Dst: sip:" + r.uas[0].Addr.String()}
		if flush {
			extra = append(extra, "X-Flush: 1")
		}
		r.uac.Send(r.uac.Request("INVITE", "sip:bob@127.0.0.1", extra...))
		got := recv(t, r.uas[0], "INVITE ")
		// answer once the request route has finished (it sets the flag after t_relay)
		for deadline := time.Now().Add(2 * time.Second); strings.Count(r.p.Log.String(), "is_request_route=1") <= i; {
			if time.Now().After(deadline) {
				t.Fatal("the request route did not finish")
			}
			time.Sleep(5 * time.Millisecond)
		}
		r.uas[0].Send(reply(got, "404 Not Found"))
		recv(t, r.uas[0], "ACK ")
		recv(t, r.uac, "SIP/2.0 404")
	}
	log := r.p.Log.String()
	for _, want := range []string{"t_drop rc=0", "failure flag5=false", "failure flag5=true", "is_request_route=1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
