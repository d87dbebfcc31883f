package enginetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden compares got with the golden file at path. With update (a test's -update flag) it writes got to
// the file, and the comparison still runs against what the file held before: a run that rewrote a
// stale file fails with the difference, so an update is always seen and reviewed, and the test can never
// pass by comparing the file with itself. Updating under CI=true is refused: CI only compares.
func Golden(t testing.TB, path, got string, update bool) {
	t.Helper()
	if update && os.Getenv("CI") == "true" {
		t.Fatalf("golden files are never rewritten under CI=true (drop -update)")
		return
	}
	want, err := os.ReadFile(path)
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	switch {
	case err != nil && update:
		t.Errorf("%s created: review it, then run again without -update", path)
	case err != nil:
		t.Fatalf("%v (run the test with -update to create it)", err)
	case string(want) != got && update:
		t.Errorf("%s was stale and has been rewritten: review the change, then run again without -update\n%s", path, DiffLines(string(want), got))
	case string(want) != got:
		t.Errorf("%s differs (-update rewrites it):\n%s", path, DiffLines(string(want), got))
	}
}

// DiffLines lists the lines only in want ("- ") and only in got ("+ "), in order: enough to see what a
// golden comparison found without a diff tool.
func DiffLines(want, got string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		g[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order or line endings)\n--- got\n" + got
	}
	return b.String()
}
