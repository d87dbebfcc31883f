package usrloc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The Redis backend keeps one hash per AOR. Field versionField holds a random token that changes on every
// write (the compare-and-set of Update); every other field is one binding: its name is contactFieldPrefix +
// the Contact URI (readable with redis-cli; a suffix "#n" keeps duplicates apart), its value the binding
// encoded below. A compact binary form rather than JSON: it is decoded on every cache miss and encoded on
// every REGISTER, and the strings of a decoded binding are substrings of the one value (no copy each).
const (
	versionField       = "#v"
	contactFieldPrefix = "c:"
	codecVersion       = 1
)

var errCodec = errors.New("bad binding encoding")

// appendBinding appends the encoding of b, at position idx of its AOR's list, to dst.
func appendBinding(dst []byte, idx int, b *Binding) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(idx))
	return appendBindingFields(dst, b)
}

// decodeBinding decodes v (a field value) into b, for AOR aor; it returns the binding's position. It never
// panics on bad input: a value some other writer left is reported as an error, the caller skips it.
func decodeBinding(v, aor string, b *Binding) (int, error) {
	d := decoder{s: v}
	if f := d.byte(); f != codecVersion {
		return 0, fmt.Errorf("%w: format %d, want %d", errCodec, f, codecVersion)
	}
	idx := d.uvarint()
	*b = Binding{AOR: aor}
	d.bindingFields(b)
	if d.err || d.left() != 0 || idx > 1<<20 {
		return 0, fmt.Errorf("%w (%d bytes)", errCodec, len(v))
	}
	return int(idx), nil
}

// contactFields gives each binding its field name: the Contact, with "#n" added when two bindings of the
// list share one (the store must not lose a binding the registrar chose to keep).
func contactFields(bs []Binding) []string {
	names := make([]string, len(bs))
	seen := make(map[string]struct{}, len(bs))
	for i := range bs {
		n := contactFieldPrefix + bs[i].Contact
		for k := 2; ; k++ {
			if _, dup := seen[n]; !dup {
				break
			}
			n = contactFieldPrefix + bs[i].Contact + "#" + strconv.Itoa(k)
		}
		seen[n] = struct{}{}
		names[i] = n
	}
	return names
}

// decodedBinding is a binding with its stored position, to give the bindings back in the order Update got.
type decodedBinding struct {
	idx int
	b   Binding
}

// decodeHash turns an AOR's hash (field → value) into its bindings in stored order and its version token.
// Undecodable fields are skipped and counted in bad.
func decodeHash(h map[string]string, aor string) (bs []Binding, ver string, bad int) {
	ver = h[versionField]
	if len(h) <= 1 {
		return nil, ver, 0
	}
	tmp := make([]decodedBinding, 0, len(h)-1)
	for f, v := range h {
		if f == versionField {
			continue
		}
		var d decodedBinding
		idx, err := decodeBinding(v, aor, &d.b)
		if err != nil {
			bad++
			continue
		}
		d.idx = idx
		tmp = append(tmp, d)
	}
	slices.SortFunc(tmp, func(a, b decodedBinding) int { return a.idx - b.idx })
	bs = make([]Binding, len(tmp))
	for i := range tmp {
		bs[i] = tmp[i].b
	}
	return bs, ver, bad
}
