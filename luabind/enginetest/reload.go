package enginetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/siplua/siplua/engine"
)

// WriteFile writes a file (script.lua, config.toml, a required module) into the proxy's directory.
func (p *Proxy) WriteFile(t testing.TB, name, content string) {
	t.Helper()
	path := filepath.Join(p.Dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// write then rename, as editors do, so a reader never sees half a file
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Reload reads config.toml and the script again from the proxy's directory and reloads the engine.
func (p *Proxy) Reload() ([]string, error) {
	return p.E.ReloadFrom(func() (*engine.Config, error) {
		return engine.LoadConfigFile(filepath.Join(p.Dir, "config.toml"))
	})
}
