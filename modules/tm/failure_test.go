package tm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

// failureScript relays to UAS 0; the first failure route may call t_drop_replies(DROP) and relays to UAS 1
// when there is one; a second failure route, armed only when there is a UAS 2, relays there. (An armed
// failure route that does nothing under modes 1 and 2 leaves no reply: 500.)
func failureScript(pp *peers, drop string) string {
	uri := func(i int) string {
		if i < len(pp.uas) {
			return pp.uasURI(i)
		}
		return ""
	}
	return fmt.Sprintf(`
B, C, DROP = %q, %q, %q
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_on_failure("f1")
	KSR.tm.t_relay()
end
function f1()
	if DROP ~= "" then KSR.tm.t_drop_replies(DROP) end
	if B == "" then return end
	KSR.seturi(B)
	if C ~= "" then KSR.tm.t_on_failure("f2") end
	KSR.tm.t_relay()
end
function f2()
	if C == "" then return end
	KSR.seturi(C)
	KSR.tm.t_relay()
end
`, uri(1), uri(2), drop)
}

// TestFailureReplyMode checks which reply reaches the caller after serial forking for each
// failure_reply_mode (Kamailio t_reply.c semantics), and t_drop_replies overriding it for one route.
func TestFailureReplyMode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    int
		drop    string   // t_drop_replies argument in the first failure route
		answers []string // one per UAS, in the order they are tried
		want    string
	}{
		// with Kamailio's priorities the lower code wins (404 over 486): the first step's 404 shows it was kept
		{"0 keeps the first step's reply", 0, "", []string{"404 Not Found", "486 Busy Here"}, "404"},
		{"1 drops earlier replies", 1, "", []string{"404 Not Found", "486 Busy Here"}, "486"},
		{"2 drops the failed step", 2, "", []string{"404 Not Found", "486 Busy Here"}, "486"},
		{"3 drops earlier replies on a new step", 3, "", []string{"404 Not Found", "486 Busy Here"}, "486"},
		{"0 without a new step relays the reply", 0, "", []string{"486 Busy Here"}, "486"},
		{"3 without a new step relays the reply", 3, "", []string{"486 Busy Here"}, "486"},
		{"1 without a new step answers 500", 1, "", []string{"486 Busy Here"}, "500 I'm terribly sorry, server error occurred (1/TM)"},
		{"2 without a new step answers 500", 2, "", []string{"486 Busy Here"}, "500 I'm terribly sorry"},
		{"2 keeps steps kept by t_drop_replies n", 2, "n", []string{"404 Not Found", "486 Busy Here", "480 Temporarily Unavailable"}, "404"},
		{"1 drops them all", 1, "n", []string{"404 Not Found", "486 Busy Here", "480 Temporarily Unavailable"}, "480"},
		{"t_drop_replies a overrides mode 0", 0, "a", []string{"404 Not Found", "486 Busy Here"}, "486"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(peerConfig, "[modules.tm]\n", fmt.Sprintf("[modules.tm]\nfailure_reply_mode = %d\n", tc.mode), 1)
			pp := startPeers(t, cfg, len(tc.answers), func(pp *peers) string { return failureScript(pp, tc.drop) })
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			for i, st := range tc.answers {
				answer(t, pp.uas[i], recvRequest(t, pp.uas[i], "INVITE", 2*time.Second), st)
			}
			final, _ := recvFinal(t, pp.uac, 2*time.Second)
			if got := strings.TrimPrefix(startLine(final), "SIP/2.0 "); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("UAC got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFailureReplyModeValidate: only Kamailio's four modes are accepted.
func TestFailureReplyModeValidate(t *testing.T) {
	for _, mode := range []int{-1, 4} {
		err := loadTMConfig(t, fmt.Sprintf("[modules.tm]\nfailure_reply_mode = %d\n", mode))
		if err == nil || !strings.Contains(err.Error(), "failure_reply_mode") {
			t.Errorf("mode %d: error %v, want one naming failure_reply_mode", mode, err)
		}
	}
	if err := loadTMConfig(t, "[modules.tm]\nfailure_reply_mode = 2\n"); err != nil {
		t.Errorf("mode 2: %v", err)
	}
}

// Test503To500: a 503 chosen as the final answer goes upstream as a local 500 (RFC 3261 §16.7 step 6),
// with Kamailio's reason text, unless remap_503_500 is off; other codes are relayed as they are.
func Test503To500(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, answer, want string
	}{
		{"remapped by default", "", "503 Service Unavailable", "500 Service Unavailable"},
		{"remap off", "remap_503_500 = false\n", "503 Service Unavailable", "503 Service Unavailable"},
		{"502 relayed", "", "502 Bad Gateway", "502 Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(peerConfig, "[modules.tm]\n", "[modules.tm]\n"+tc.cfg, 1)
			pp := startPeers(t, cfg, 1, func(pp *peers) string { return failureScript(pp, "") })
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			answer(t, pp.uas[0], recvRequest(t, pp.uas[0], "INVITE", 2*time.Second), tc.answer)
			final, _ := recvFinal(t, pp.uac, 2*time.Second)
			if got := strings.TrimPrefix(startLine(final), "SIP/2.0 "); got != tc.want {
				t.Fatalf("UAC got %q, want %q", got, tc.want)
			}
		})
	}
}

// Test408Timing: a branch without a final answer ends with a local 408 after fr_timer (no reply at all) or
// fr_inv_timer (after a provisional), as set by t_set_fr; a branch that rang gets a CANCEL.
func Test408Timing(t *testing.T) {
	const slack = 400 * time.Millisecond // scheduling on a shared 2-core machine
	for _, tc := range []struct {
		name  string
		ring  bool
		after time.Duration
	}{
		{"no reply: fr_timer", false, 400 * time.Millisecond},
		{"ringing: fr_inv_timer", true, 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := startPeers(t, peerConfig, 1, func(pp *peers) string {
				return `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	KSR.tm.t_set_fr(700, 400)
	KSR.tm.t_relay()
end
`
			})
			start := time.Now()
			pp.uac.Send(pp.uac.Request("INVITE", pp.uasURI(0)))
			inv := recvRequest(t, pp.uas[0], "INVITE", 2*time.Second)
			if tc.ring {
				start = time.Now()
				pp.uas[0].Send(replyTo(string(inv), "180 Ringing", "u1"))
			}
			final, _ := recvFinal(t, pp.uac, tc.after+2*time.Second)
			took := time.Since(start)
			if got := strings.TrimPrefix(startLine(final), "SIP/2.0 "); got != "408 Request Timeout" {
				t.Fatalf("UAC got %q, want 408", got)
			}
			if took < tc.after-50*time.Millisecond || took > tc.after+slack {
				t.Errorf("408 after %v, want %v (+%v slack)", took, tc.after, slack)
			}
			if tc.ring {
				if c := recvRequest(t, pp.uas[0], "CANCEL", 2*time.Second); !strings.HasPrefix(startLine(c), "CANCEL "+pp.uasURI(0)) {
					t.Errorf("CANCEL line %q", startLine(c))
				}
			}
		})
	}
}

func loadTMConfig(t *testing.T, toml string) error {
	t.Helper()
	_, err := engine.ParseConfig([]byte(toml), "config.toml", t.TempDir())
	return err
}
