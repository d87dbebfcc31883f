package tm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// sippProc is one SIPp process of a test (enginetest's: free ports, started again when a port was taken,
// a UAS waited for until it listens).
type sippProc = enginetest.SIPp

// startSIPp runs SIPp with a scenario from testdata/sipp on 127.0.0.1; args are extra SIPp arguments
// (remote address first for a UAC). It is stopped when the test ends.
func startSIPp(t *testing.T, name, scenario string, args ...string) *sippProc {
	t.Helper()
	return enginetest.StartSIPp(t, name, filepath.Join("testdata", "sipp", scenario), args...)
}

func calleeCSV(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "callee.csv")
	if err := os.WriteFile(p, []byte("SEQUENTIAL\nbob;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readScript(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const tmConfig = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.maxfwd]\n[modules.siputils]\n"

// TestS2Call runs the benchmark scenario S2 unchanged: SIPp UAC → siplua (S2.lua) → SIPp UAS, with
// Record-Route and the ACK and BYE loose-routed.
func TestS2Call(t *testing.T) {
	p := enginetest.Start(t, tmConfig, readScript(t, "../../../scripts/bench/S2.lua")) // the benchmark script itself
	uas := startSIPp(t, "uas", "call-uas.xml", "-m", "3")
	uac := startSIPp(t, "uac", "call-uac.xml", p.UDP.String(), "-m", "3", "-r", "10",
		"-key", "target", "127.0.0.1:"+strconv.Itoa(uas.Port), "-inf", calleeCSV(t))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// relayScript is the Kamailio example's relaying logic with a failure route that sends a 486 to a second
// UAS (%s) and $FR_INV ms fr_inv_timer.
const relayScript = `
function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
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
	if KSR.is_INVITE() then KSR.rr.record_route() end
	if FORK ~= "" then KSR.corex.append_branch_uri(FORK) end
	if FR_INV > 0 then KSR.tm.t_set_fr(FR_INV, 2000) end
	KSR.tm.t_on_failure("failure_route")
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end

function failure_route()
	if KSR.tm.t_is_canceled() > 0 then return end
	if NEXT ~= "" and KSR.tm.t_check_status("486") > 0 then
		KSR.seturi(NEXT)
		KSR.tm.t_relay()
	end
end
`

func relay(next, fork string, frInv int) string {
	return fmt.Sprintf("NEXT = %q\nFORK = %q\nFR_INV = %d\n", next, fork, frInv) + relayScript
}

func uasURI(s *sippProc, transport string) string {
	u := "sip:bob@127.0.0.1:" + strconv.Itoa(s.Port)
	if transport != "" {
		u += ";transport=" + transport
	}
	return u
}

// TestSIPpFlows runs SIPp UACs and UASes through the proxy for the stateful flows of issue 5.
func TestSIPpFlows(t *testing.T) {
	type uas struct{ scenario, transport string }
	for _, tc := range []struct {
		name  string
		uas   []uas  // first: the R-URI target; second: NEXT (failure route) or FORK
		use   string // "next" or "fork" for the second UAS
		uac   string
		frInv int
	}{
		{name: "cancel after 180", uas: []uas{{"uas-ring-cancel.xml", ""}}, uac: "uac-cancel.xml"},
		{name: "486 then failure route to UAS2", uas: []uas{{"uas-486.xml", ""}, {"call-uas.xml", ""}}, use: "next", uac: "call-uac.xml"},
		{name: "no answer gives 408", uas: []uas{{"uas-ring-cancel.xml", ""}}, uac: "uac-408.xml", frInv: 500},
		{name: "parallel fork, other branch cancelled", uas: []uas{{"call-uas-slow.xml", ""}, {"uas-ring-cancel.xml", ""}}, use: "fork", uac: "call-uac.xml"},
		{name: "udp in tcp out", uas: []uas{{"call-uas-tcp.xml", "tcp"}}, uac: "call-uac.xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var procs []*sippProc
			for _, u := range tc.uas {
				args := []string{"-m", "1"}
				if u.transport == "tcp" {
					args = append(args, "-t", "t1")
				}
				procs = append(procs, startSIPp(t, "uas "+u.scenario, u.scenario, args...))
			}
			next, fork := "", ""
			if len(procs) > 1 {
				if tc.use == "next" {
					next = uasURI(procs[1], "")
				} else {
					fork = uasURI(procs[1], "")
				}
			}
			p := enginetest.Start(t, tmConfig+"[modules.corex]\n", relay(next, fork, tc.frInv))
			target := "127.0.0.1:" + strconv.Itoa(procs[0].Port)
			if tc.uas[0].transport != "" {
				target += ";transport=" + tc.uas[0].transport
			}
			uac := startSIPp(t, "uac", tc.uac, p.UDP.String(), "-m", "1", "-key", "target", target, "-inf", calleeCSV(t))
			if err := uac.Wait(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, s := range procs {
				if err := s.Wait(10 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
