package htable

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/siplua/siplua/modules/internal/statefile"
)

// The snapshot file of the memory tables (framing in modules/internal/statefile):
//
//	header  "SIPLUAHT" + version byte (1)
//	record  table, key (uvarint length + bytes each), kind byte ('s' or 'i'), the value (string as
//	        above, integer as a varint), varint expiry (Unix milliseconds, 0 = never)
//
// One record per item keeps a damaged file's loss to the items after the damage.
const (
	snapMagic     = "SIPLUAHT"
	snapVersion   = 1
	maxSnapRecord = 16 << 20
)

// saveSnapshot writes the live items of the memory tables when they changed since the last snapshot.
// Shard locks are held only to gather items (walk), never during I/O.
func (h *Htable) saveSnapshot() error {
	if h.snapPath == "" {
		return nil
	}
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	gen := h.gen.Load()
	if gen == h.savedGen {
		return nil
	}
	items := 0
	err := statefile.WriteAtomic(h.snapPath, func(w *bufio.Writer) error {
		sw, err := statefile.NewWriter(w, snapMagic, snapVersion)
		if err != nil {
			return err
		}
		var buf []byte
		for _, name := range h.names {
			t := h.tables[name]
			if _, ok := t.store.(*memStore); !ok {
				continue
			}
			var werr error
			t.store.walk(func(key string, it item) bool {
				buf = appendItem(buf[:0], name, key, it)
				werr = sw.Record(buf)
				return werr == nil
			})
			if werr != nil {
				return werr
			}
		}
		items = sw.Records()
		return sw.Close()
	})
	if err != nil {
		return err
	}
	h.savedGen = gen
	h.log.Debug("htable snapshot written", "file", h.snapPath, "items", items)
	return nil
}

func appendItem(buf []byte, table, key string, it item) []byte {
	str := func(v string) { buf = binary.AppendUvarint(buf, uint64(len(v))); buf = append(buf, v...) }
	str(table)
	str(key)
	if it.str {
		buf = append(buf, 's')
		str(it.s)
	} else {
		buf = append(buf, 'i')
		buf = binary.AppendVarint(buf, it.n)
	}
	return binary.AppendVarint(buf, it.exp)
}

var errShort = errors.New("record shorter than its fields")

func decodeItem(p []byte) (table, key string, it item, err error) {
	str := func() string {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			err = errShort
			p = nil
			return ""
		}
		v := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return v
	}
	varint := func() int64 {
		v, k := binary.Varint(p)
		if k <= 0 {
			err = errShort
			p = nil
			return 0
		}
		p = p[k:]
		return v
	}
	table, key = str(), str()
	if err != nil || len(p) == 0 {
		return "", "", item{}, errShort
	}
	kind := p[0]
	p = p[1:]
	switch kind {
	case 's':
		it.str, it.s = true, str()
	case 'i':
		it.n = varint()
	default:
		return "", "", item{}, fmt.Errorf("unknown value kind %q", kind)
	}
	it.exp = varint()
	if err != nil {
		return "", "", item{}, err
	}
	if len(p) != 0 {
		return "", "", item{}, fmt.Errorf("%d bytes left after the item", len(p))
	}
	return table, key, it, nil
}

// loadSnapshot fills the memory tables from the snapshot file at start, skipping expired items and
// tables that are no longer configured (or now in Redis). A missing file is a first start. A damaged one
// is logged: the items before the damage are kept; the process goes on either way.
func (h *Htable) loadSnapshot() {
	h.readSnapshot(func(table string) *memStore {
		if t := h.tables[table]; t != nil {
			ms, _ := t.store.(*memStore)
			return ms
		}
		return nil
	})
	h.savedGen = h.gen.Load() // what was just loaded is on disk already
}

// readSnapshot reads the snapshot file into the stores into returns for each table (nil: skip it).
func (h *Htable) readSnapshot(into func(table string) *memStore) (loaded int, err error) {
	f, err := os.Open(h.snapPath)
	if errors.Is(err, os.ErrNotExist) {
		h.log.Info("no htable snapshot yet, starting empty", "file", h.snapPath)
		return 0, nil
	}
	if err != nil {
		h.log.Error("htable snapshot not loaded", "file", h.snapPath, "err", err)
		return 0, err
	}
	defer f.Close()
	now := nowMs()
	skipped := 0
	_, err = statefile.Read(f, snapMagic, snapVersion, maxSnapRecord, func(p []byte) error {
		table, key, it, err := decodeItem(p)
		if err != nil {
			return err
		}
		ms := into(table)
		if ms == nil {
			skipped++
			return nil
		}
		if it.live(now) {
			ms.load(key, it)
			loaded++
		}
		return nil
	})
	if err != nil {
		h.log.Error("htable snapshot damaged: kept the items before the damage, skipped the rest",
			"file", h.snapPath, "items", loaded, "err", err)
	} else {
		h.log.Info("htable snapshot loaded", "file", h.snapPath, "items", loaded, "skipped", skipped)
	}
	return loaded, err
}
