package usrloc

import "encoding/binary"

// One binary form of a Binding's fields serves both the Redis backend (one hash field per binding,
// redis_codec.go) and the memory backend's snapshot file (one record per AOR, snapshot.go): the seven
// strings as a uvarint length and the bytes, then the numbers as varints. The AOR is not in it: both keep
// it once per AOR. Changing this changes both formats: bump codecVersion and snapVersion together.

// minBindingBytes is the smallest encoded binding: 7 empty strings and 8 one-byte varints.
const minBindingBytes = 15

// appendBindingFields appends the encoding of b's fields (all but the AOR) to dst.
func appendBindingFields(dst []byte, b *Binding) []byte {
	for _, s := range [...]string{b.Contact, b.Received, b.Path, b.Socket, b.CallID, b.UserAgent, b.Instance} {
		dst = appendString(dst, s)
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

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads what appendBindingFields and appendString wrote from a string: the decoded strings are
// substrings of it (no allocation per field). It never panics: reading past the end or a bad varint sets
// err, and every later read returns a zero value.
type decoder struct {
	s   string
	i   int
	err bool
}

// left is the count of bytes not read yet.
func (d *decoder) left() int { return len(d.s) - d.i }

func (d *decoder) byte() byte {
	if d.err || d.i >= len(d.s) {
		d.err = true
		return 0
	}
	d.i++
	return d.s[d.i-1]
}

// uvarint reads an unsigned varint with binary.Uvarint's rules (at most 10 bytes, no overflow), from a
// string without copying it.
func (d *decoder) uvarint() uint64 {
	var x uint64
	for n, shift := 0, uint(0); n < binary.MaxVarintLen64; n, shift = n+1, shift+7 {
		c := d.byte()
		if d.err {
			return 0
		}
		if c < 0x80 {
			if n == binary.MaxVarintLen64-1 && c > 1 {
				break // overflow
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	d.err = true
	return 0
}

// varint reads a signed (zig-zag) varint, binary.Varint's format.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err || n > uint64(d.left()) {
		d.err = true
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

// bindingFields decodes appendBindingFields' encoding into b, leaving b.AOR as it is.
func (d *decoder) bindingFields(b *Binding) {
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
}
