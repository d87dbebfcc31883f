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
	for _, s := range [...]string{b.Contact, b.Received, b.Path, b.Socket, b.CallID, b.UserAgent, b.Instance} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendVarint(dst, b.Expires)
	dst = binary.AppendVarint(dst, b.Modified)
	dst = binary.AppendUvarint(dst, uint64(b.CSeq))
	dst = binary.AppendVarint(dst, int64(b.Q))
	dst = binary.AppendVarint(dst, int64(b.RegID))
	dst = binary.AppendUvarint(dst, uint64(b.Flags))
	dst = binary.AppendUvarint(dst, b.CFlags)
	dst = binary.AppendUvarint(dst, uint64(b.Methods))
	return dst
}

// decodeBinding decodes v (a field value) into b, for AOR aor; it returns the binding's position. It never
// panics on bad input: a value some other writer left is reported as an error, the caller skips it.
func decodeBinding(v, aor string, b *Binding) (int, error) {
	d := redisDecoder{s: v}
	if f := d.byte(); f != codecVersion {
		return 0, fmt.Errorf("%w: format %d, want %d", errCodec, f, codecVersion)
	}
	idx := d.uvarint()
	*b = Binding{AOR: aor}
	for _, p := range [...]*string{&b.Contact, &b.Received, &b.Path, &b.Socket, &b.CallID, &b.UserAgent, &b.Instance} {
		*p = d.str()
	}
	b.Expires = d.varint()
	b.Modified = d.varint()
	b.CSeq = uint32(d.uvarint())
	b.Q = int16(d.varint())
	b.RegID = int32(d.varint())
	b.Flags = uint32(d.uvarint())
	b.CFlags = d.uvarint()
	b.Methods = uint32(d.uvarint())
	if d.err || d.i != len(v) || idx > 1<<20 {
		return 0, fmt.Errorf("%w (%d bytes)", errCodec, len(v))
	}
	return int(idx), nil
}

type redisDecoder struct {
	s   string
	i   int
	err bool
}

func (d *redisDecoder) byte() byte {
	if d.i >= len(d.s) {
		d.err = true
		return 0
	}
	d.i++
	return d.s[d.i-1]
}

// uvarint reads an unsigned varint (binary.Uvarint's format, read from a string without copying it).
func (d *redisDecoder) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		c := d.byte()
		if d.err {
			return 0
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
	d.err = true
	return 0
}

func (d *redisDecoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *redisDecoder) str() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.s)-d.i) {
		d.err = true
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
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
