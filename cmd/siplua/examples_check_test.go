package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesCheck: every example configuration under scripts/examples passes `siplua -c -strict` (its
// script compiles, names only loaded KSR functions and has none of the lint traps). kemi-basic.toml names
// Kamailio's packaged example, checked by TestExampleKemiBasicCheck when the package is installed.
func TestExamplesCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "scripts", "examples", "*.toml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("example configurations: %v %v", files, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "kemi-basic.toml") {
			if _, err := os.Stat(kemiBasicScript); err != nil {
				continue
			}
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"-c", "-strict", "-config", f}, &stdout, &stderr); code != 0 || stdout.String() != "config OK\n" {
				t.Errorf("siplua -c -strict -config %s: exit %d\n%s%s", f, code, stdout.String(), stderr.String())
			}
		})
	}
}
