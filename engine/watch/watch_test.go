package watch

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	a, b, other := filepath.Join(dir, "a.lua"), filepath.Join(dir, "sub", "b.lua"), filepath.Join(dir, "other.txt")
	must(t, os.MkdirAll(filepath.Dir(b), 0o755))
	for _, f := range []string{a, b, other} {
		must(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	var calls atomic.Int32
	changed := make(chan struct{}, 10)
	w, err := New(func() { calls.Add(1); changed <- struct{}{} }, 50*time.Millisecond, nil)
	must(t, err)
	defer w.Close()
	must(t, w.Set([]string{a, b}))

	// quiet fails at once when a call comes within d (a negative check needs a window; it does not wait
	// for anything to happen)
	quiet := func(name string, d time.Duration) {
		t.Helper()
		select {
		case <-changed:
			t.Fatalf("%s: unexpected call (%d calls)", name, calls.Load())
		case <-time.After(d):
		}
	}
	wait := func(name string, want int32) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: no call", name)
		}
		if got := calls.Load(); got != want {
			t.Fatalf("%s: %d calls, want %d", name, got, want)
		}
		// a second call for the same change would come within a few debounce periods
		quiet(name, 150*time.Millisecond)
	}
	// a burst of writes is one call
	for i := range 5 {
		must(t, os.WriteFile(a, []byte{byte('0' + i)}, 0o644))
	}
	wait("burst", 1)
	// an editor's save: write a temp file, rename it over the watched one
	must(t, os.WriteFile(b+".swp", []byte("y"), 0o644))
	must(t, os.Rename(b+".swp", b))
	wait("rename in subdir", 2)
	// a file not in the set does not count
	must(t, os.WriteFile(other, []byte("z"), 0o644))
	quiet("unwatched file", 200*time.Millisecond)
	// with MatchExt, any .lua file in a watched directory counts
	w.MatchExt(".lua")
	must(t, os.WriteFile(filepath.Join(dir, "new.lua"), []byte("x"), 0o644))
	wait("new .lua file", 3)
	// after Set, only the new set counts
	w.MatchExt("")
	must(t, w.Set([]string{other}))
	must(t, os.WriteFile(b, []byte("q"), 0o644))
	must(t, os.WriteFile(a, []byte("q"), 0o644))
	quiet("files no longer watched", 200*time.Millisecond)
	must(t, os.WriteFile(other, []byte("q"), 0o644))
	wait("new set", 4)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
