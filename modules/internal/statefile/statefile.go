// Package statefile writes and reads the snapshot files modules keep across restarts (usrloc's location
// table, htable's tables): one atomic write (temporary file, fsync, rename, directory fsync) and a framed
// record format whose per-record CRC lets a damaged file give back every record before the damage.
//
//	header  magic + version byte
//	record  uvarint(len) payload crc32c(payload), little endian
//	end     uvarint(0) then uvarint(records written): a file without it was cut short
package statefile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/siplua/siplua/engine"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Resolve turns a snapshot file name into a path. A relative name is relative to the configuration
// file's directory; the embedded default configuration has no directory, so there the file goes to the
// state directory ($STATE_DIRECTORY from systemd's StateDirectory=, else $XDG_STATE_HOME/siplua, else
// ~/.local/state/siplua), never to whatever the working directory happens to be.
func Resolve(name string, cfg *engine.Config) (string, error) {
	if name == "" || filepath.IsAbs(name) || cfg == nil {
		return name, nil
	}
	if cfg.Dir != "" {
		return cfg.Resolve(name), nil
	}
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		d, _, _ = strings.Cut(d, ":") // systemd lists one per StateDirectory= entry, and creates them
		return filepath.Join(d, name), nil
	}
	dir, err := stateDir()
	if err != nil {
		return "", fmt.Errorf("snapshot file %q: the configuration has no directory and %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("snapshot file %q: state directory: %w", name, err)
	}
	return filepath.Join(dir, name), nil
}

func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "siplua"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no state directory is known ($STATE_DIRECTORY, $XDG_STATE_HOME and $HOME are unset)")
	}
	return filepath.Join(home, ".local", "state", "siplua"), nil
}

// Probe reports whether a file can be created next to path (checked at start, so that a snapshot that
// cannot be written is reported at once rather than at the first interval).
func Probe(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".probe*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// WriteAtomic replaces path by what write produces: a temporary file in the same directory (mode 0600:
// snapshots hold users' data), fsynced, renamed over the old one, and the directory fsynced, so a crash
// leaves either the old file or the new one, never a mix.
func WriteAtomic(path string, write func(w *bufio.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	if err := write(w); err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Writer frames records after a header; Close writes the end mark.
type Writer struct {
	w       io.Writer
	records uint64
	frame   [binary.MaxVarintLen64 + 4]byte
}

// NewWriter writes the header (magic and version).
func NewWriter(w io.Writer, magic string, version byte) (*Writer, error) {
	if _, err := io.WriteString(w, magic); err != nil {
		return nil, err
	}
	if _, err := w.Write([]byte{version}); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// Record writes one non-empty payload with its length and checksum.
func (w *Writer) Record(payload []byte) error {
	if len(payload) == 0 {
		return errors.New("statefile: empty record")
	}
	n := binary.PutUvarint(w.frame[:], uint64(len(payload)))
	if _, err := w.w.Write(w.frame[:n]); err != nil {
		return err
	}
	if _, err := w.w.Write(payload); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(w.frame[:4], crc32.Checksum(payload, crcTable))
	_, err := w.w.Write(w.frame[:4])
	if err == nil {
		w.records++
	}
	return err
}

// Records is the number of records written so far.
func (w *Writer) Records() int { return int(w.records) }

// Close writes the end mark (it does not close the underlying writer).
func (w *Writer) Close() error {
	_, err := w.w.Write(binary.AppendUvarint(binary.AppendUvarint(nil, 0), w.records))
	return err
}

// Read checks the header and calls fn with each record's payload (valid only during the call) until the
// end mark or the first damage: every record before the damage has been given to fn when the error is
// returned. maxRecord bounds one record so that a corrupt length cannot make the reader allocate
// gigabytes. An error from fn stops the reading and is returned as is.
func Read(r io.Reader, magic string, version byte, maxRecord int, fn func(payload []byte) error) (records int, err error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		b := bufio.NewReaderSize(r, 256<<10)
		r, br = b, b
	}
	head := make([]byte, len(magic)+1)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, fmt.Errorf("header: %w", eofIsShort(err))
	}
	if string(head[:len(magic)]) != magic {
		return 0, fmt.Errorf("not a %s file (bad magic)", magic)
	}
	if head[len(magic)] != version {
		return 0, fmt.Errorf("file version %d, this siplua reads %d", head[len(magic)], version)
	}
	var buf []byte
	var crc [4]byte
	for rec := 0; ; rec++ {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return rec, fmt.Errorf("record %d: length: %w", rec, eofIsShort(err))
		}
		if n == 0 {
			want, err := binary.ReadUvarint(br)
			if err != nil {
				return rec, fmt.Errorf("end mark: %w", eofIsShort(err))
			}
			if want != uint64(rec) {
				return rec, fmt.Errorf("end mark counts %d records, read %d", want, rec)
			}
			return rec, nil
		}
		if n > uint64(maxRecord) {
			return rec, fmt.Errorf("record %d: length %d is over the %d limit", rec, n, maxRecord)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return rec, fmt.Errorf("record %d: %w", rec, eofIsShort(err))
		}
		if _, err := io.ReadFull(r, crc[:]); err != nil {
			return rec, fmt.Errorf("record %d: checksum: %w", rec, eofIsShort(err))
		}
		if binary.LittleEndian.Uint32(crc[:]) != crc32.Checksum(buf, crcTable) {
			return rec, fmt.Errorf("record %d: checksum mismatch", rec)
		}
		if err := fn(buf); err != nil {
			return rec, fmt.Errorf("record %d: %w", rec, err)
		}
	}
}

func eofIsShort(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
