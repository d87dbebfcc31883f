package registrar_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// funcScript: REGISTER is saved; a MESSAGE runs the function named in X-Fn and answers with what it saw.
const funcScript = `
function ksr_request_route()
	if KSR.is_REGISTER() then
		KSR.setbflag(3)
		KSR.registrar.save("location", 0)
		return 1
	end
	local fn, arg = KSR.hdr.get("X-Fn"), KSR.hdr.get("X-Arg") or ""
	local out = ""
	if fn == "fetch" then
		local rc = KSR.registrar.reg_fetch_contacts("location", arg, "p")
		out = "rc=" .. rc
		for _, a in ipairs({"count", "aor", "domain", "addr", "addr[1]", "addr[2]", "q", "q[1]", "expires", "callid",
				"cseq", "cflags", "user_agent", "socket", "methods", "path", "received", "ruid"}) do
			out = out .. " " .. a .. "=" .. tostring(KSR.pv.get("$ulc(p=>" .. a .. ")"))
		end
		KSR.registrar.reg_free_contacts("p")
		out = out .. " freed=" .. tostring(KSR.pv.get("$ulc(p=>count)"))
	elseif fn == "ruid" then
		KSR.registrar.reg_fetch_contacts("location", arg, "p")
		local id = KSR.pv.get("$ulc(p=>ruid[1])")
		out = "bad=" .. KSR.registrar.unregister_ruid("location", arg, "uloc-0") ..
			" rc=" .. KSR.registrar.unregister_ruid("location", arg, id) ..
			" again=" .. KSR.registrar.unregister_ruid("location", "", id) ..
			" reg=" .. KSR.registrar.registered_uri("location", arg)
	elseif fn == "unregister" then
		out = "rc=" .. KSR.registrar.unregister("location", arg) .. " reg=" .. KSR.registrar.registered_uri("location", arg)
	elseif fn == "registered" then
		out = "rc=" .. KSR.registrar.registered("location") .. " ru=" .. KSR.pv.get("$ru")
	elseif fn == "branches" then
		KSR.corex.append_branch_uri(arg)
		local rc = KSR.registrar.lookup_branches("location")
		out = "rc=" .. rc .. " ru=" .. KSR.pv.get("$ru") .. " bflags=" .. KSR.pv.get("$bf")
	elseif fn == "dset" then
		local rc = KSR.registrar.lookup_to_dset("location", arg)
		out = "rc=" .. rc .. " ru=" .. KSR.pv.get("$ru")
	elseif fn == "qover" then
		out = "rc=" .. KSR.registrar.set_q_override("0.7") .. " bad=" .. KSR.registrar.set_q_override("7")
	end
	KSR.hdr.append_to_reply("X-Out: " .. out .. "\r\n")
	KSR.sl.sl_send_reply(200, "Done")
end
`

func run(t *testing.T, u *ua, ruri, fn, arg string) string {
	t.Helper()
	return header(u.request(t, "MESSAGE", ruri, "X-Fn: "+fn, "X-Arg: "+arg), "X-Out")
}

// step is one call of the script's X-Fn function with the R-URI and X-Arg, and the X-Out it must give.
type step struct{ what, ruri, fn, arg, want string }

// runSteps runs steps in order through u, failing at the first whose output differs.
func runSteps(t *testing.T, u *ua, steps []step) {
	t.Helper()
	for _, st := range steps {
		if got := run(t, u, st.ruri, st.fn, st.arg); got != st.want {
			t.Fatalf("%s: got %q, want %q", st.what, got, st.want)
		}
	}
}

// TestULC: reg_fetch_contacts fills $ulc(p=>attr) (index written inside the argument), reg_free_contacts
// empties it.
func TestULC(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.corex]\n[modules.usrloc]\n[modules.registrar]\n", funcScript)
	u := newUA(t, p)
	u.register(t, "amy", 7, "Contact: <sip:amy@10.0.0.1>;q=0.8;expires=600, <sip:amy@10.0.0.2>;q=0.3", "User-Agent: phone/1", "Allow: INVITE, MESSAGE")
	now := time.Now().Unix()
	got := run(t, u, "sip:x@example.com", "fetch", "sip:AMY@example.com")
	for _, want := range []string{"rc=1 ", " count=2 ", " aor=amy ", " domain=location ", " addr=sip:amy@10.0.0.1 ",
		" addr[1]=sip:amy@10.0.0.2 ", " addr[2]=nil ", " q=800 ", " q[1]=300 ", " callid=" + u.callID + " ", " cseq=7 ",
		" cflags=8 ", " user_agent=phone/1 ", " socket=udp:" + p.UDP.String() + " ", " methods=257 ", " path=nil ",
		" received=nil ", " freed=nil"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
	f := strings.Fields(got)
	for _, kv := range f {
		if v, ok := strings.CutPrefix(kv, "expires="); ok {
			if e, _ := strconv.ParseInt(v, 10, 64); e < now+598 || e > now+601 {
				t.Errorf("expires %d, want about %d", e, now+600)
			}
		}
	}
	if got := run(t, u, "sip:x@example.com", "fetch", "sip:zed@example.com"); !strings.HasPrefix(got, "rc=-1 count=nil") {
		t.Errorf("unknown AOR: %q", got)
	}
}

// TestUnregister: unregister removes every contact of the AOR (1 also when there was none), unregister_ruid
// one contact by its $ulc ruid (-3 when unknown); registered reports live bindings without changing the
// R-URI.
func TestUnregister(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.corex]\n[modules.usrloc]\n[modules.registrar]\n", funcScript)
	u := newUA(t, p)
	u.register(t, "ben", 1, "Contact: <sip:ben@10.0.0.1>, <sip:ben@10.0.0.2>")
	runSteps(t, u, []step{
		{"registered", "sip:ben@example.com", "registered", "", "rc=1 ru=sip:ben@example.com"},
		{"unregister_ruid", "sip:x@example.com", "ruid", "sip:ben@example.com", "bad=-3 rc=1 again=-3 reg=1"},
		{"unregister", "sip:x@example.com", "unregister", "sip:ben@example.com", "rc=1 reg=-1"},
		{"unregister again", "sip:x@example.com", "unregister", "sip:ben@example.com", "rc=1 reg=-1"},
		{"registered after unregister", "sip:ben@example.com", "registered", "", "rc=-1 ru=sip:ben@example.com"},
	})
}

// TestLookupBranchesAndDset: lookup_branches resolves the R-URI and a plain branch; lookup_to_dset leaves
// the R-URI alone; branch flags saved with the contact come back.
func TestLookupBranchesAndDset(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.corex]\n[modules.usrloc]\n[modules.registrar]\n", funcScript)
	u := newUA(t, p)
	u.register(t, "cat", 1, "Contact: <sip:cat@10.0.0.1>")
	u2 := newUA(t, p)
	u2.register(t, "dan", 1, "Contact: <sip:dan@10.0.0.2>")
	runSteps(t, u, []step{
		{"lookup_branches", "sip:cat@example.com", "branches", "sip:dan@example.com", "rc=1 ru=sip:cat@10.0.0.1 bflags=8"},
		{"lookup_branches with only a branch found", "sip:nobody@example.com", "branches", "sip:dan@example.com", "rc=1 ru=sip:nobody@example.com bflags=0"},
		{"lookup_to_dset", "sip:cat@example.com", "dset", "sip:dan@example.com", "rc=1 ru=sip:cat@example.com"},
		{"set_q_override", "sip:cat@example.com", "qover", "", "rc=1 bad=-1"},
	})
}
