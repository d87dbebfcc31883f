package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper()                       {}
func (r *recorder) Errorf(f string, a ...any)     { r.failed = append(r.failed, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any)     { r.failed = append(r.failed, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatal(a ...any)                { r.failed = append(r.failed, fmt.Sprint(a...)) }
func (r *recorder) outcome() (failed bool, n int) { return len(r.failed) > 0, len(r.failed) }

// TestGolden: equal passes; different fails (and -update rewrites but still fails); a missing file fails;
// an update that changes nothing passes; -update under CI=true is refused.
func TestGolden(t *testing.T) {
	t.Setenv("CI", "")
	path := filepath.Join(t.TempDir(), "g", "x.golden")
	for _, step := range []struct {
		name     string
		got      string
		update   bool
		wantFail bool
		wantFile string
	}{
		{"missing", "one\n", false, true, ""},
		{"missing, update creates", "one\n", true, true, "one\n"},
		{"equal", "one\n", false, false, "one\n"},
		{"different", "two\n", false, true, "one\n"},
		{"different, update rewrites and fails", "two\n", true, true, "two\n"},
		{"update without change", "two\n", true, false, "two\n"},
	} {
		r := &recorder{TB: t}
		Golden(r, path, step.got, step.update)
		if failed, _ := r.outcome(); failed != step.wantFail {
			t.Errorf("%s: failed=%v (%q), want %v", step.name, failed, r.failed, step.wantFail)
		}
		b, _ := os.ReadFile(path)
		if string(b) != step.wantFile {
			t.Errorf("%s: file %q, want %q", step.name, b, step.wantFile)
		}
	}
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Golden(r, path, "three\n", true)
	if b, _ := os.ReadFile(path); len(r.failed) == 0 || string(b) != "two\n" {
		t.Errorf("update under CI: failures %q, file %q", r.failed, b)
	}
}
