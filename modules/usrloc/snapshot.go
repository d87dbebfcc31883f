package usrloc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/internal/statefile"
)

// The snapshot file of the memory backend:
//
//	header  "SIPLUAUL" + version byte (1)
//	record  uvarint(len) payload crc32c(payload), little endian; one record per AOR
//	end     uvarint(0) then uvarint(records written): a file without it was cut short
//
// payload: table, aor, uvarint(n), then n bindings of Contact Received Path Socket CallID UserAgent
// Instance (each uvarint length + bytes), varint Expires Modified, uvarint CSeq, varint Q RegID, uvarint
// Flags CFlags Methods. Varints keep it compact (a binding is ~130 bytes) and the per-record CRC lets a
// damaged file give back every record before the damage.
const (
	snapMagic   = "SIPLUAUL"
	snapVersion = 1
	// maxSnapRecord bounds one record (an AOR's bindings) so that a corrupt length cannot make the loader
	// allocate gigabytes.
	maxSnapRecord = 16 << 20
)

// DefaultSnapshotFile is snapshot_file's default: next to the configuration file.
const DefaultSnapshotFile = "usrloc.snapshot"

// snapshotPath resolves snapshot_file as every module's snapshot is resolved (statefile.Resolve: next to
// the configuration file, or in the state directory for the embedded configuration).
func snapshotPath(name string, cfg *engine.Config) (string, error) {
	return statefile.Resolve(name, cfg)
}

// probeSnapshotDir warns at start when the snapshot cannot be written, rather than at the first interval.
// It is not an error: the proxy serves, only without persistence.
func (s *memStore) probeSnapshotDir() {
	if err := statefile.Probe(s.snapPath); err != nil {
		s.log.Warn("usrloc snapshot cannot be written: locations will not survive a restart", "file", s.snapPath, "err", err)
	}
}

// saveSnapshot writes the live bindings to the snapshot file atomically: a temporary file in the same
// directory, fsynced, renamed over the old one, and the directory fsynced. It does nothing when the table
// has not changed since the last snapshot. Shard locks are held only to gather slices, never during I/O.
func (s *memStore) saveSnapshot() error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	gen := s.gen.Load()
	if gen == s.savedGen {
		return nil
	}
	var n int
	if err := statefile.WriteAtomic(s.snapPath, func(w *bufio.Writer) (err error) {
		n, err = s.writeSnapshot(w)
		return err
	}); err != nil {
		return err
	}
	s.savedGen = gen
	s.log.Debug("usrloc snapshot written", "file", s.snapPath, "aors", n)
	return nil
}

// writeSnapshot writes the header, one record per AOR with live bindings, and the end mark.
func (s *memStore) writeSnapshot(w io.Writer) (records int, err error) {
	sw, err := statefile.NewWriter(w, snapMagic, snapVersion)
	if err != nil {
		return 0, err
	}
	var (
		batch []tableBindings
		buf   []byte
	)
	now := s.now()
	for i := range s.shards {
		batch = s.shards[i].gather(batch[:0], "")
		for _, e := range batch {
			buf = appendRecord(buf[:0], e.table, e.bs, now)
			if buf == nil {
				continue // nothing live
			}
			if err := sw.Record(buf); err != nil {
				return sw.Records(), err
			}
		}
	}
	return sw.Records(), sw.Close()
}

// appendRecord encodes the live bindings of one AOR; it returns nil when none is live.
func appendRecord(buf []byte, table string, bs []Binding, now int64) []byte {
	n := 0
	for i := range bs {
		if bs[i].Live(now) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	buf = appendString(buf, table)
	buf = appendString(buf, bs[0].AOR)
	buf = binary.AppendUvarint(buf, uint64(n))
	for i := range bs {
		if bs[i].Live(now) {
			buf = appendBindingFields(buf, &bs[i])
		}
	}
	return buf
}

// loadSnapshot fills the empty store from the snapshot file, skipping expired bindings. A missing file
// is a first start. A damaged one is logged: the records before the damage are kept, the rest skipped;
// the process goes on either way.
func (s *memStore) loadSnapshot() {
	f, err := os.Open(s.snapPath)
	if errors.Is(err, os.ErrNotExist) {
		s.log.Info("no usrloc snapshot yet, starting empty", "file", s.snapPath)
		return
	}
	if err != nil {
		s.log.Error("usrloc snapshot not loaded", "file", s.snapPath, "err", err)
		return
	}
	defer f.Close()
	aors, bindings, err := s.readSnapshot(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		s.log.Error("usrloc snapshot damaged: kept what came before the damage, skipped the rest",
			"file", s.snapPath, "aors", aors, "bindings", bindings, "err", err)
	} else {
		s.log.Info("usrloc snapshot loaded", "file", s.snapPath, "aors", aors, "bindings", bindings)
	}
	s.savedGen = s.gen.Load() // what was just loaded is on disk already
}

// readSnapshot reads records into the store until the end mark or the first damage (statefile.Read: the
// records before the damage are kept).
func (s *memStore) readSnapshot(r *bufio.Reader) (aors, bindings int, err error) {
	now := s.now()
	_, err = statefile.Read(r, snapMagic, snapVersion, maxSnapRecord, func(p []byte) error {
		table, aor, bs, err := decodeRecord(p, now)
		if err != nil || len(bs) == 0 {
			return err
		}
		if err := s.Update(table, aor, func(cur []Binding) ([]Binding, error) { return append(cur, bs...), nil }); err != nil {
			return err
		}
		aors++
		bindings += len(bs)
		return nil
	})
	return aors, bindings, err
}

var errShortRecord = errors.New("record shorter than its fields")

// decodeRecord is appendRecord's inverse; only the bindings live at now are returned.
func decodeRecord(p []byte, now int64) (table, aor string, bs []Binding, err error) {
	// One string for the whole record: the fields are sliced from it (the store copies them into its own
	// allocation per binding), instead of one allocation per field.
	d := decoder{s: string(p)}
	table, aor = d.str(), d.str()
	n := d.uvarint()
	if d.err {
		return "", "", nil, errShortRecord
	}
	if table == "" || aor == "" {
		return "", "", nil, errors.New("empty table or AOR")
	}
	if n > uint64(d.left())/minBindingBytes { // a bigger count is damage: do not allocate for it
		return "", "", nil, fmt.Errorf("%d bindings cannot fit in %d bytes", n, d.left())
	}
	bs = make([]Binding, 0, n)
	for range n {
		var b Binding
		d.bindingFields(&b)
		if d.err {
			return "", "", nil, errShortRecord
		}
		if b.Live(now) {
			b.AOR = aor
			bs = append(bs, b)
		}
	}
	if d.left() != 0 {
		return "", "", nil, fmt.Errorf("%d bytes left after the bindings", d.left())
	}
	return table, aor, bs, nil
}
