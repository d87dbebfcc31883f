package config

import (
	"strings"
	"testing"
)

// TestWebConfig: [web] is off by default, auth is required off loopback, basic auth needs both halves,
// and each error names the key and its line.
func TestWebConfig(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		err       string // "" = valid
	}{
		{"off", "", ""},
		{"loopback no auth", "[web]\nlisten = \"127.0.0.1:8080\"\n", ""},
		{"ipv6 loopback", "[web]\nlisten = \"[::1]:8080\"\n", ""},
		{"localhost", "[web]\nlisten = \"localhost:8080\"\n", ""},
		{"public with basic", "[web]\nlisten = \"0.0.0.0:8080\"\nuser = \"admin\"\npassword = \"x\"\n", ""},
		{"public with token", "[web]\nlisten = \":8080\"\ntoken = \"abc\"\nallow_actions = true\n", ""},
		{"public no auth", "[web]\nlisten = \"0.0.0.0:8080\"\n", "test.toml:2: web.listen: \"0.0.0.0:8080\" is not a loopback address: set user and password, or token"},
		{"all interfaces no auth", "[web]\nlisten = \":8080\"\n", "is not a loopback address"},
		{"user without password", "[web]\nlisten = \"127.0.0.1:8080\"\nuser = \"admin\"\n", "test.toml:3: web.user: basic auth needs a password too"},
		{"password without user", "[web]\nlisten = \"127.0.0.1:8080\"\npassword = \"x\"\n", "test.toml:3: web.password: basic auth needs a user too"},
		{"bad listen", "[web]\nlisten = \"8080\"\n", "web.listen: expected host:port"},
		{"bad port", "[web]\nlisten = \"127.0.0.1:http\"\n", "web.listen: bad port"},
		{"unknown key", "[web]\nlisten = \"127.0.0.1:8080\"\nallow_action = true\n", "allow_action"},
		{"wrong type", "[web]\nallow_actions = \"yes\"\n", "allow_actions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.src), "test.toml", "/tmp")
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.src == "" && (c.Web.Listen != "" || c.Web.AllowActions) {
					t.Errorf("defaults: %+v", c.Web)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
