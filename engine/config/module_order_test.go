package config

import (
	"strings"
	"testing"
)

// TestModuleDependencies: a module that requires another starts after it (whatever the names' order), and
// a configuration without the required module is an error naming both.
func TestModuleDependencies(t *testing.T) {
	names := []string{"zz-store-test", "aa-user-test", "mm-opt-test"}
	Register(Module{Name: names[0], New: func() Instance { return noExports{} }})
	Register(Module{Name: names[1], New: func() Instance { return noExports{} }, Requires: []string{names[0]}})
	Register(Module{Name: names[2], New: func() Instance { return noExports{} }, After: []string{names[0], "not-loaded"}})
	cfg, err := ParseConfig([]byte("[modules.aa-user-test]\n[modules.mm-opt-test]\n[modules.zz-store-test]\n"), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, l := range cfg.Mods.List {
		pos[l.Name] = i
	}
	if pos[names[0]] > pos[names[1]] || pos[names[0]] > pos[names[2]] {
		t.Errorf("start order %v: %s must come before the modules that need it", cfg.Mods.List, names[0])
	}
	if inst, ok := cfg.Mods.Get(names[1]); !ok || inst == nil {
		t.Errorf("Get after reordering lost %s", names[1])
	}
	_, err = ParseConfig([]byte("[modules.aa-user-test]\n"), "t.toml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "t.toml:1: [modules.aa-user-test]: needs module zz-store-test") {
		t.Errorf("missing requirement: got %v", err)
	}
}

type noExports struct{}

func (noExports) Exports() []Export { return nil }
