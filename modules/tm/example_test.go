package tm_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestStatefulExample: scripts/examples/stateful.toml with stateful.lua passes `siplua -c` and routes a
// SIPp call (INVITE, ACK and BYE loose-routed) from a UAC to a UAS.
func TestStatefulExample(t *testing.T) {
	dir := filepath.Join("..", "..", "scripts", "examples")
	cfg, err := engine.LoadConfigFile(filepath.Join(dir, "stateful.toml"))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if probs := luabind.Check(cfg); len(probs) > 0 {
		t.Fatalf("siplua -c: %v", probs)
	}
	toml, err := os.ReadFile(filepath.Join(dir, "stateful.toml"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "stateful.lua"))
	if err != nil {
		t.Fatal(err)
	}
	// kernel-chosen ports instead of 5060
	toml = regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAll(toml, nil)
	p := enginetest.StartFiles(t, string(toml), map[string]string{"stateful.lua": string(script)})
	uas := startSIPp(t, "uas", "call-uas.xml", "-m", "2")
	uac := startSIPp(t, "uac", "call-uac.xml", p.UDP.String(), "-m", "2", "-r", "10",
		"-key", "target", "127.0.0.1:"+strconv.Itoa(uas.Port), "-inf", calleeCSV(t))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
