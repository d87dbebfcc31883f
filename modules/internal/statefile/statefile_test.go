package statefile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path string, records ...string) {
	t.Helper()
	err := WriteAtomic(path, func(w *bufio.Writer) error {
		sw, err := NewWriter(w, "TESTSNAP", 1)
		if err != nil {
			return err
		}
		for _, r := range records {
			if err := sw.Record([]byte(r)); err != nil {
				return err
			}
		}
		return sw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func read(data []byte, version byte) (got []string, err error) {
	_, err = Read(bytes.NewReader(data), "TESTSNAP", version, 1<<20, func(p []byte) error {
		got = append(got, string(p))
		return nil
	})
	return got, err
}

func TestRoundTripAndDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	write(t, path, "one", "two", strings.Repeat("x", 300))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if m, _ := filepath.Glob(path + ".tmp*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	flip := func(i int) []byte { d := bytes.Clone(data); d[i] ^= 0xff; return d }
	for _, tc := range []struct {
		name    string
		data    []byte
		version byte
		want    string // records read, joined
		err     string
	}{
		{"whole", data, 1, "one,two,x300", ""},
		{"cut in the last record", data[:len(data)-10], 1, "one,two", "record 2"},
		{"cut in the end mark", data[:len(data)-1], 1, "one,two,x300", "end mark"},
		{"cut before the end mark", data[:len(data)-2], 1, "one,two,x300", "record 3: length"},
		{"second record damaged", flip(len("TESTSNAP") + 1 + 1 + 3 + 4 + 1 + 1), 1, "one", "record 1: checksum mismatch"},
		{"bad magic", append([]byte("NOTSNAP!"), data[8:]...), 1, "", "bad magic"},
		{"other version", data, 2, "", "file version 1"},
		{"empty", nil, 1, "", "header"},
		{"huge length", append(bytes.Clone(data[:9]), 0xff, 0xff, 0xff, 0xff, 0x0f), 1, "", "over the"},
	} {
		got, err := read(tc.data, tc.version)
		for i, g := range got {
			if len(g) == 300 {
				got[i] = "x300"
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: records %q, want %q", tc.name, got, tc.want)
		}
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

// TestWriteAtomicKeepsOldOnFailure: a failing writer leaves the previous file as it was.
func TestWriteAtomicKeepsOldOnFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	write(t, path, "old")
	err := WriteAtomic(path, func(w *bufio.Writer) error { w.WriteString("partial"); return fmt.Errorf("disk full") })
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v", err)
	}
	data, _ := os.ReadFile(path)
	if got, err := read(data, 1); err != nil || len(got) != 1 || got[0] != "old" {
		t.Fatalf("after a failed write: %q %v", got, err)
	}
	if m, _ := filepath.Glob(path + ".tmp*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
