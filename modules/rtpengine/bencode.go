package rtpengine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Bencode, the encoding of rtpengine's ng protocol (BitTorrent's BEP 3): integers i42e, strings 4:spam,
// lists l...e and dictionaries d...e with keys sorted as raw strings. Values are Go types: int64 (int is
// accepted when encoding), string ([]byte too), []any and map[string]any.

// maxDepth bounds nesting when decoding, so a hostile reply cannot exhaust the stack.
const maxDepth = 32

var errTrailing = errors.New("bencode: data after the value")

// Encode appends the bencoding of v to dst.
func Encode(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case []byte:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case int:
		return Encode(dst, int64(x))
	case int64:
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, x, 10)
		return append(dst, 'e'), nil
	case []string:
		dst = append(dst, 'l')
		for _, s := range x {
			dst, _ = Encode(dst, s)
		}
		return append(dst, 'e'), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			var err error
			if dst, err = Encode(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst, _ = Encode(dst, k)
			var err error
			if dst, err = Encode(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	}
	return dst, fmt.Errorf("bencode: cannot encode %T", v)
}

// Decode parses one value that must fill b entirely.
func Decode(b []byte) (any, error) {
	v, n, err := decode(b, 0)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, errTrailing
	}
	return v, nil
}

func decode(b []byte, depth int) (any, int, error) {
	if len(b) == 0 {
		return nil, 0, errors.New("bencode: unexpected end")
	}
	if depth > maxDepth {
		return nil, 0, errors.New("bencode: nested too deep")
	}
	switch c := b[0]; {
	case c == 'i':
		end := slices.Index(b, 'e')
		if end < 2 {
			return nil, 0, errors.New("bencode: bad integer")
		}
		digits := b[1:end]
		if (len(digits) > 1 && digits[0] == '0') || (len(digits) > 1 && digits[0] == '-' && digits[1] == '0') || string(digits) == "-" {
			return nil, 0, fmt.Errorf("bencode: bad integer %q", digits)
		}
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("bencode: bad integer %q", digits)
		}
		return n, end + 1, nil
	case c >= '0' && c <= '9':
		s, n, err := decodeString(b)
		return s, n, err
	case c == 'l':
		list := []any{}
		pos := 1
		for {
			if pos >= len(b) {
				return nil, 0, errors.New("bencode: unterminated list")
			}
			if b[pos] == 'e' {
				return list, pos + 1, nil
			}
			v, n, err := decode(b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			list = append(list, v)
			pos += n
		}
	case c == 'd':
		dict := map[string]any{}
		pos := 1
		for {
			if pos >= len(b) {
				return nil, 0, errors.New("bencode: unterminated dictionary")
			}
			if b[pos] == 'e' {
				return dict, pos + 1, nil
			}
			k, n, err := decodeString(b[pos:])
			if err != nil {
				return nil, 0, fmt.Errorf("bencode: dictionary key: %w", err)
			}
			pos += n
			v, n, err := decode(b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			dict[k] = v
			pos += n
		}
	}
	return nil, 0, fmt.Errorf("bencode: unexpected byte %q", b[0])
}

func decodeString(b []byte) (string, int, error) {
	colon := slices.Index(b, ':')
	if colon < 1 || colon > 10 {
		return "", 0, errors.New("bencode: bad string length")
	}
	n, err := strconv.Atoi(string(b[:colon]))
	if err != nil || n < 0 || (colon > 1 && b[0] == '0') {
		return "", 0, fmt.Errorf("bencode: bad string length %q", b[:colon])
	}
	if n > len(b)-colon-1 {
		return "", 0, errors.New("bencode: string longer than the data")
	}
	return string(b[colon+1 : colon+1+n]), colon + 1 + n, nil
}
