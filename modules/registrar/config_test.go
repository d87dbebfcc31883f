package registrar_test

import (
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/registrar"
)

// TestValidate: every parameter out of range is refused with its name and what was expected.
func TestValidate(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"", ""},
		{"default_expires = -1", "default_expires: expected 0 or more, got -1"},
		{"min_expires_mode = 2", "min_expires_mode: expected 0"},
		{"default_q = 1001", "default_q: expected -1 (none) or 0..1000, got 1001"},
		{"path_mode = 3", "path_mode: expected 0 (off), 1 (lazy) or 2 (strict), got 3"},
		{"received_avp = \"RECEIVED\"", "received_avp: expected $avp(name)"},
		{"received_avp = \"$avp(s:rcv)\"", ""},
		{"received_avp = \"\"", ""},
		{"contact_max_size = 0", "contact_max_size: expected 1..65535, got 0"},
		{"max_contacts = -2", "max_contacts: expected 0 or more, got -2"},
		{"nosuch = 1", "nosuch"},
	} {
		_, err := engine.ParseConfig([]byte("[modules.usrloc]\n[modules.registrar]\n"+tc.toml+"\n"), "config.toml", t.TempDir())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.toml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.toml, err, tc.want)
		}
	}
}

// TestNeedsUsrloc: without [modules.usrloc] the registrar does not start, and says why.
func TestNeedsUsrloc(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", "function ksr_request_route() end")
	err := registrar.New().Start(&engine.Env{Engine: p.E})
	if err == nil || !strings.Contains(err.Error(), "[modules.usrloc]") {
		t.Fatalf("Start without usrloc: %v", err)
	}
}

// TestExportsAdapted: every KSR.registrar function has a signature luabind can call.
func TestExportsAdapted(t *testing.T) {
	for _, ex := range registrar.New().Exports() {
		if !luabind.Supported(ex.Fn) {
			t.Errorf("%s: %T is not adapted by luabind", ex.Name, ex.Fn)
		}
	}
}

// TestReloadLive: a reload applies changed registrar parameters to the running module at once (as
// Kamailio's cfg framework does for max_contacts, expiries …); use_domain waits for a restart.
func TestReloadLive(t *testing.T) {
	cfg := "[lua]\nscript = \"script.lua\"\n[modules.sl]\n[modules.usrloc]\n[modules.registrar]\nmax_contacts = 1\n"
	p := enginetest.Start(t, cfg, regScript)
	u := newUA(t, p)
	if got := u.register(t, "val", 1, "Contact: <sip:v@10.0.0.1>, <sip:v@10.0.0.2>"); status(got) != "503 Service Unavailable" {
		t.Fatalf("before reload: %q", status(got))
	}
	p.WriteFile(t, "config.toml", strings.Replace(cfg, "max_contacts = 1", "max_contacts = 3\nmax_expires = 100\nuse_domain = true", 1))
	warnings, err := p.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "modules.registrar.use_domain changed: it takes effect on restart") {
		t.Fatalf("warnings %q", warnings)
	}
	got := u.register(t, "val", 2, "Contact: <sip:v@10.0.0.1>, <sip:v@10.0.0.2>")
	if status(got) != "200 OK" || header(got, "Contact") != "<sip:v@10.0.0.1>;expires=100, <sip:v@10.0.0.2>;expires=100" {
		t.Fatalf("after reload:\n%s", got)
	}
	// use_domain did not change: the AOR is still the user alone
	if got := u.request(t, "OPTIONS", "sip:val@other.example"); header(got, "X-Ret") != "1" {
		t.Fatalf("lookup without domain after reload:\n%s", got)
	}
}
