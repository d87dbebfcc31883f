// Package registrartest holds test helpers shared by the tests of the registrar and of the location
// backends (usrloc): the S3 benchmark flow run with real SIPp processes. Only tests import it.
package registrartest

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/enginetest"
)

// dir is this package's source directory: the scenarios and the benchmark script are found from here,
// whichever package's test (and working directory) uses them.
var dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}()

// Scenario is the path of one of the registrar's SIPp scenarios (modules/registrar/testdata/sipp).
func Scenario(name string) string {
	return filepath.Join(dir, "..", "testdata", "sipp", name)
}

// S3Script is the S3 benchmark's routing script, scripts/bench/S3.lua, unchanged.
func S3Script(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "..", "..", "..", "scripts", "bench", "S3.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RegisterAndCall runs the S3 benchmark's flow: SIPp registers users user0 … user<users-1> through reg,
// each with a SIPp UAS as its Contact, then a SIPp UAC calls every user through call, which must find the
// UAS by lookup("location"); every call (INVITE, ACK, BYE loose-routed) must complete. reg and call may be
// the same proxy or two sharing a location backend.
func RegisterAndCall(t *testing.T, reg, call *enginetest.Proxy, users int) {
	t.Helper()
	inf := enginetest.SIPpUsers(t, users)
	n := strconv.Itoa(users)
	uas := enginetest.StartSIPp(t, "uas", Scenario("call-uas.xml"), "-m", n)
	register := enginetest.StartSIPp(t, "register", Scenario("register.xml"), reg.UDP.String(), "-m", n, "-r", "200",
		"-key", "target", uas.Addr(), "-inf", inf)
	if err := register.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	uac := enginetest.StartSIPp(t, "uac", Scenario("call-uac.xml"), call.UDP.String(), "-m", n, "-r", "50",
		"-key", "target", call.UDP.String(), "-inf", inf)
	if err := uac.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
