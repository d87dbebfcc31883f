package auth_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestSIPpRegisterAuth: SIPp registers 20 times, each time answering the 401 with digest credentials it
// computes itself ([authentication]); the script authenticates with pv_auth_check and answers 200 through
// the transaction. SIPp 3.6 knows MD5 only, so MD5 is the one algorithm offered here.
func TestSIPpRegisterAuth(t *testing.T) {
	enginetest.NeedProgram(t, "sipp", "sip-tester") // before the proxy starts
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.auth]\nalgorithms = [\"MD5\"]\n", `
function ksr_request_route()
	if KSR.tm.t_newtran() <= 0 then return end -- retransmissions: the transaction answers
	local rc = KSR.auth.pv_auth_check("", "s3cret", 0, 1)
	if rc == -4 or rc == -5 then KSR.auth.auth_challenge("", 1); return end
	if rc < 0 then KSR.tm.t_reply(403, "Forbidden " .. rc); return end
	KSR.tm.t_reply(200, "OK")
end`)
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"right password", "s3cret", true}, {"wrong password", "wrong", false}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{p.UDP.String(), "-s", "alice", "-au", "alice", "-ap", tc.password, "-m", "20", "-r", "50",
				"-recv_timeout", "5000"}
			if !tc.ok {
				args = append(args, "-m", "1")
			}
			s := enginetest.StartSIPp(t, "register-auth", filepath.Join("testdata", "sipp", "register-auth.xml"), args...)
			err := s.Wait(25 * time.Second)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if errs := s.ErrorLog(); !tc.ok && (err == nil || !bytes.Contains(errs, []byte("403 Forbidden -2"))) {
				t.Fatalf("sipp with a wrong password: %v, want a failed call with 403 Forbidden -2; errors:\n%s", err, enginetest.Tail(string(errs), 2000))
			}
		})
	}
}
