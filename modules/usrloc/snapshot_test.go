package usrloc

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
)

// full is a binding with every field set, to check that the snapshot keeps them all.
func full(clk *clock, i int) Binding {
	return Binding{
		Contact: fmt.Sprintf("sip:u%d@10.0.0.%d:5060;transport=udp", i, i%250), Received: "sip:192.0.2.1:1024;transport=udp",
		Path: "<sip:edge1;lr>,<sip:edge2;lr>", Socket: "udp:127.0.0.1:5060", CallID: fmt.Sprintf("cid-%d", i),
		UserAgent: "Phone/1.0 ü", Instance: "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
		Expires: clk.at(int64(100 + i)), Modified: clk.at(-5), CSeq: uint32(40000 + i), Q: int16(i % 1001),
		RegID: int32(i % 3), Flags: 0x11, CFlags: 1<<63 | 1<<7, Methods: 0xffff,
	}
}

func lookupAll(t *testing.T, s Store) map[string][]Binding {
	t.Helper()
	m := map[string][]Binding{}
	err := s.Range("", func(table string, b *Binding) bool {
		k := table + "/" + b.AOR
		m[k] = append(m[k], *b)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSnapshotRestart(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "usrloc.snapshot")
	s := openTest(t, memOptions{Now: clk.now, SnapshotFile: path, SnapshotInterval: time.Hour})
	for i := range 300 {
		put(t, s, "location", fmt.Sprintf("user%d@example.org", i), full(clk, i), full(clk, i+1000))
	}
	put(t, s, "other", "user1@example.org", full(clk, 7))
	put(t, s, "location", "gone@example.org", Binding{Contact: "sip:gone", Expires: clk.at(50)}, full(clk, 9))
	want := lookupAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, %v; want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(path + ".tmp*"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	clk.add(50) // the restart took a while: gone@'s first contact expired meanwhile
	r := openTest(t, memOptions{Now: clk.now, SnapshotFile: path})
	got := lookupAll(t, r)
	want["location/gone@example.org"] = want["location/gone@example.org"][1:]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart: %d AORs, want %d; e.g. got %+v\nwant %+v", len(got), len(want),
			got["location/gone@example.org"], want["location/gone@example.org"])
	}
	checkCounts(t, r, 302, 602)
	bs, _ := r.Lookup("location", "user5@example.org")
	if len(bs) != 2 || bs[1].Contact != full(clk, 1005).Contact || bs[0].AOR != "user5@example.org" {
		t.Fatalf("Lookup after restart: %+v", bs)
	}
}

// A process killed without Close loses at most what changed in the last snapshot_interval.
func TestSnapshotKilled(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "usrloc.snapshot")
	const interval = 100 * time.Millisecond
	s, err := openMemStore(memOptions{Now: clk.now, SnapshotFile: path, SnapshotInterval: interval, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "", "early@example.org", full(clk, 1))
	time.Sleep(5 * interval) // well over one interval (slack for a loaded machine): a periodic snapshot has it
	put(t, s, "", "late@example.org", full(clk, 2))
	// kill: the goroutine stops, no Close, no final snapshot
	close(s.stop)
	<-s.done

	r := openTest(t, memOptions{Now: clk.now, SnapshotFile: path})
	if bs, _ := r.Lookup("", "early@example.org"); len(bs) != 1 {
		t.Fatalf("binding registered %v before the kill was lost", 5*interval)
	}
}

// An unchanged table is not rewritten; a changed one is.
func TestSnapshotOnlyWhenChanged(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "usrloc.snapshot")
	s := openTest(t, memOptions{Now: clk.now, SnapshotFile: path})
	put(t, s, "", "a", full(clk, 1))
	if err := s.saveSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("marker"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.saveSnapshot(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "marker" {
		t.Fatal("unchanged table was written again")
	}
	put(t, s, "", "b", full(clk, 2))
	if err := s.saveSnapshot(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte(snapMagic)) {
		t.Fatal("changed table was not written")
	}
}

// logBuf collects log lines of a store for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A damaged snapshot never stops the start: what came before the damage is loaded, the rest is logged
// and skipped.
func TestSnapshotDamaged(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "good")
	s := openTest(t, memOptions{Now: clk.now, SnapshotFile: path})
	for i := range 5 {
		put(t, s, "", fmt.Sprintf("u%d", i), full(clk, i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	for _, tc := range []struct {
		name    string
		data    []byte
		maxAORs int    // at most this many loaded
		minAORs int    // at least this many
		log     string // in the log
	}{
		{"intact", good, 5, 5, "usrloc snapshot loaded"},
		{"empty", nil, 0, 0, "header"},
		{"bad magic", append([]byte("NOTSIPLU"), good[8:]...), 0, 0, "bad magic"},
		{"future version", append(append([]byte(snapMagic), 9), good[9:]...), 0, 0, "version 9"},
		{"cut in the last record", good[:len(good)-10], 4, 4, "unexpected EOF"},
		{"no end mark", good[:len(good)-2], 5, 5, "record 5: length: unexpected EOF"},
		{"end mark cut", good[:len(good)-1], 5, 5, "end mark: unexpected EOF"},
		{"flipped byte in record 2", flip(len(good) / 2), 4, 1, "checksum mismatch"},
		{"huge length", append(bytes.Clone(good[:9]), 0xff, 0xff, 0xff, 0xff, 0x0f), 0, 0, "over the"},
		{"garbage", bytes.Repeat([]byte{0xAB}, 5000), 0, 0, "bad magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var lb logBuf
			r := openTest(t, memOptions{Now: clk.now, SnapshotFile: p, Log: slog.New(slog.NewTextHandler(&lb, nil))})
			a, _ := r.Counts()
			if a < tc.minAORs || a > tc.maxAORs {
				t.Fatalf("loaded %d AORs, want %d..%d; log: %s", a, tc.minAORs, tc.maxAORs, lb.String())
			}
			if !strings.Contains(lb.String(), tc.log) {
				t.Fatalf("log %q does not mention %q", lb.String(), tc.log)
			}
		})
	}
	// every truncation point: no panic, never more than what was written
	for n := range len(good) {
		r, err := openMemStore(memOptions{Now: clk.now, SnapshotFile: writeTemp(t, dir, good[:n]), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := r.Counts(); a > 5 {
			t.Fatalf("cut at %d: %d AORs", n, a)
		}
	}
}

func writeTemp(t testing.TB, dir string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, "cut")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzSnapshot(f *testing.F) {
	clk := newClock()
	var buf bytes.Buffer
	s, _ := openMemStore(memOptions{Now: clk.now, Log: slog.New(slog.DiscardHandler)})
	for i := range 3 {
		put(f, s, "", fmt.Sprintf("u%d", i), full(clk, i))
	}
	if _, err := s.writeSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapMagic + "\x01\x00\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := writeTemp(t, dir, data)
		r, err := openMemStore(memOptions{Now: clk.now, SnapshotFile: p, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		a, c := r.Counts()
		if a < 0 || c < a {
			t.Fatalf("counts %d %d", a, c)
		}
	})
}

// A snapshot that cannot be written is an error from Close, not a crash; the table stays usable.
func TestSnapshotUnwritable(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "usrloc.snapshot")
	var lb logBuf
	s := openTest(t, memOptions{Now: clk.now, SnapshotFile: path, Log: slog.New(slog.NewTextHandler(&lb, nil))})
	if !strings.Contains(lb.String(), "usrloc snapshot cannot be written") {
		t.Fatalf("no warning at start: %s", lb.String())
	}
	put(t, s, "", "a", full(clk, 1))
	if err := s.saveSnapshot(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("saveSnapshot error = %v, want one naming %s", err, path)
	}
	if bs, _ := s.Lookup("", "a"); len(bs) != 1 {
		t.Fatal("table lost after a failed snapshot")
	}
}

func TestSnapshotPath(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	xdg := t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	fileCfg := &engine.Config{File: "/etc/siplua/siplua.toml", Dir: "/etc/siplua"}
	embedded := &engine.Config{File: "config.toml (embedded)"}
	for _, tc := range []struct {
		name, param string
		cfg         *engine.Config
		state       string // $STATE_DIRECTORY
		want        string
	}{
		{"off", "", fileCfg, "", ""},
		{"next to the config file", DefaultSnapshotFile, fileCfg, "", "/etc/siplua/usrloc.snapshot"},
		{"relative subdir", "state/ul.bin", fileCfg, "", "/etc/siplua/state/ul.bin"},
		{"absolute", "/var/lib/siplua/ul", fileCfg, "", "/var/lib/siplua/ul"},
		{"embedded config: XDG state dir", DefaultSnapshotFile, embedded, "", filepath.Join(xdg, "siplua", DefaultSnapshotFile)},
		{"embedded config: systemd StateDirectory", DefaultSnapshotFile, embedded, "/var/lib/siplua:/var/lib/x", "/var/lib/siplua/usrloc.snapshot"},
		{"embedded config: absolute", "/tmp/x", embedded, "", "/tmp/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tc.state)
			got, err := snapshotPath(tc.param, tc.cfg)
			if err != nil || got != tc.want {
				t.Fatalf("snapshotPath(%q) = %q, %v; want %q", tc.param, got, err, tc.want)
			}
		})
	}
}
