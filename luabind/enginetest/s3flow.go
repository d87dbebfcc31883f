package enginetest

// The S3 benchmark flow (registrar save, then calls found by lookup) with real SIPp processes, shared by
// the tests of the registrar and of the location backends (usrloc).

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// s3Dir is this file's directory: the registrar's scenarios and the benchmark script are found from here,
// whichever package's test (and working directory) uses them.
var s3Dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}()

// S3Scenario is the path of one of the registrar's SIPp scenarios (modules/registrar/testdata/sipp).
func S3Scenario(name string) string {
	return filepath.Join(s3Dir, "..", "..", "modules", "registrar", "testdata", "sipp", name)
}

// S3Script is the S3 benchmark's routing script, scripts/bench/S3.lua, unchanged.
func S3Script(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s3Dir, "..", "..", "scripts", "bench", "S3.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RegisterAndCall runs the S3 benchmark's flow: SIPp registers users user0 … user<users-1> through reg,
// each with a SIPp UAS as its Contact, then a SIPp UAC calls every user through call, which must find the
// UAS by lookup("location"); every call (INVITE, ACK, BYE loose-routed) must complete. reg and call may be
// the same proxy or two sharing a location backend.
func RegisterAndCall(t *testing.T, reg, call *Proxy, users int) {
	t.Helper()
	inf := SIPpUsers(t, users)
	n := strconv.Itoa(users)
	uas := StartSIPp(t, "uas", S3Scenario("call-uas.xml"), "-m", n)
	register := StartSIPp(t, "register", S3Scenario("register.xml"), reg.UDP.String(), "-m", n, "-r", "200",
		"-key", "target", uas.Addr(), "-inf", inf)
	if err := register.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	uac := StartSIPp(t, "uac", S3Scenario("call-uac.xml"), call.UDP.String(), "-m", n, "-r", "50",
		"-key", "target", call.UDP.String(), "-inf", inf)
	if err := uac.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
