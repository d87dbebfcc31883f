package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Credentials are the parameters of one Digest Authorization / Proxy-Authorization header value (RFC 7616
// §3.4). The byte slices point into the parsed value, except a quoted-string with escapes, which is copied
// unescaped. A parameter that was not present is nil.
type Credentials struct {
	Username, Realm, Nonce, URI, Response []byte
	Algorithm, CNonce, Opaque, QOP, NC    []byte
}

var (
	errNotDigest = errors.New("not a Digest credential")
	errSyntax    = errors.New("malformed Digest credential")
)

// ParseCredentials parses `Digest name=value, ...`. Unknown parameters are skipped (RFC 7616 §3.4); a
// parameter given twice, a missing value or an unterminated quoted-string is an error. errNotDigest tells
// another scheme (Basic, AKA is Digest too) apart from garbage.
func ParseCredentials(v []byte) (Credentials, error) {
	var c Credentials
	i := skipWS(v, 0)
	start := i
	for i < len(v) && isToken(v[i]) {
		i++
	}
	if i == start {
		return c, errSyntax
	}
	if !asciiEqualFold(v[start:i], "digest") {
		return c, errNotDigest
	}
	if i < len(v) && !isWS(v[i]) {
		return c, errSyntax
	}
	first := true
	for {
		i = skipWS(v, i)
		if i >= len(v) {
			break
		}
		if !first {
			if v[i] != ',' {
				return c, errSyntax
			}
			i = skipWS(v, i+1)
			if i >= len(v) {
				break // a trailing comma is tolerated
			}
			if v[i] == ',' {
				continue // an empty list element (RFC 7230 #rule)
			}
		}
		first = false
		ns := i
		for i < len(v) && isToken(v[i]) {
			i++
		}
		if i == ns {
			return c, errSyntax
		}
		name := v[ns:i]
		i = skipWS(v, i)
		if i >= len(v) || v[i] != '=' {
			return c, errSyntax
		}
		i = skipWS(v, i+1)
		if i >= len(v) {
			return c, errSyntax
		}
		var val []byte
		if v[i] == '"' {
			var err error
			val, i, err = quoted(v, i)
			if err != nil {
				return c, err
			}
		} else {
			vs := i
			for i < len(v) && isToken(v[i]) {
				i++
			}
			if i == vs {
				return c, errSyntax
			}
			val = v[vs:i]
		}
		dst := c.field(name)
		if dst == nil {
			continue
		}
		if *dst != nil {
			return c, errSyntax // a parameter given twice is ambiguous: reject rather than guess
		}
		if val == nil {
			val = []byte{} // present but empty ("")
		}
		*dst = val
	}
	return c, nil
}

func (c *Credentials) field(name []byte) *[]byte {
	switch len(name) {
	case 2:
		if asciiEqualFold(name, "nc") {
			return &c.NC
		}
	case 3:
		switch {
		case asciiEqualFold(name, "uri"):
			return &c.URI
		case asciiEqualFold(name, "qop"):
			return &c.QOP
		}
	case 5:
		switch {
		case asciiEqualFold(name, "realm"):
			return &c.Realm
		case asciiEqualFold(name, "nonce"):
			return &c.Nonce
		}
	case 6:
		switch {
		case asciiEqualFold(name, "cnonce"):
			return &c.CNonce
		case asciiEqualFold(name, "opaque"):
			return &c.Opaque
		}
	case 8:
		switch {
		case asciiEqualFold(name, "username"):
			return &c.Username
		case asciiEqualFold(name, "response"):
			return &c.Response
		}
	case 9:
		if asciiEqualFold(name, "algorithm") {
			return &c.Algorithm
		}
	}
	return nil
}

// quoted reads a quoted-string starting at v[i] == '"'; it returns the content (unescaped: a copy only when
// it has a backslash) and the index after the closing quote.
func quoted(v []byte, i int) ([]byte, int, error) {
	s := i + 1
	esc := false
	for j := s; j < len(v); j++ {
		switch v[j] {
		case '\\':
			esc = true
			j++
		case '"':
			if !esc {
				return v[s:j], j + 1, nil
			}
			out := make([]byte, 0, j-s)
			for k := s; k < j; k++ {
				if v[k] == '\\' && k+1 < j {
					k++
				}
				out = append(out, v[k])
			}
			return out, j + 1, nil
		}
	}
	return nil, len(v), errSyntax
}

func isWS(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func skipWS(v []byte, i int) int {
	for i < len(v) && isWS(v[i]) {
		i++
	}
	return i
}

// isToken: RFC 3261 token characters.
func isToken(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	switch b {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Algorithm is a digest hash algorithm (RFC 7616 §3.3, RFC 8760).
type Algorithm uint8

const (
	MD5 Algorithm = iota + 1
	SHA256
)

func (a Algorithm) String() string {
	switch a {
	case MD5:
		return "MD5"
	case SHA256:
		return "SHA-256"
	}
	return "unknown"
}

// HexLen is the length of a hash of this algorithm in hex.
func (a Algorithm) HexLen() int {
	if a == SHA256 {
		return 64
	}
	return 32
}

// ParseAlgorithm reads an algorithm name (case-insensitive); an absent algorithm means MD5 (RFC 2617).
func ParseAlgorithm(s []byte) (Algorithm, bool) {
	switch {
	case s == nil, asciiEqualFold(s, "md5"):
		return MD5, true
	case asciiEqualFold(s, "sha-256"):
		return SHA256, true
	}
	return 0, false
}

func parseAlgorithmName(s string) (Algorithm, error) {
	if a, ok := ParseAlgorithm([]byte(s)); ok && s != "" {
		return a, nil
	}
	return 0, fmt.Errorf("expected \"SHA-256\" or \"MD5\", got %q", s)
}

// hashHex writes H(parts joined by ':') in lower-case hex to dst (which must hold HexLen bytes) and returns
// the written part. The parts are joined in a stack buffer, so short inputs do not allocate.
func hashHex(dst []byte, a Algorithm, parts ...[]byte) []byte {
	var buf [512]byte
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, p...)
	}
	if a == SHA256 {
		sum := sha256.Sum256(b)
		hex.Encode(dst[:64], sum[:])
		return dst[:64]
	}
	sum := md5.Sum(b)
	hex.Encode(dst[:32], sum[:])
	return dst[:32]
}

// HA1 is H(username:realm:password) (RFC 7616 §3.4.2), in hex.
func HA1(a Algorithm, username, realm, password string) string {
	var out [64]byte
	return string(hashHex(out[:], a, []byte(username), []byte(realm), []byte(password)))
}

// expectedResponse computes the response the client should have sent (RFC 7616 §3.4.1): with a qop,
// H(HA1:nonce:nc:cnonce:qop:HA2), without one (RFC 2069 compatibility) H(HA1:nonce:HA2); HA2 is
// H(method:uri), or H(method:uri:H(body)) for qop=auth-int.
func expectedResponse(dst []byte, a Algorithm, ha1 []byte, c *Credentials, method string, body []byte) []byte {
	var ha2buf [64]byte
	var ha2 []byte
	if c.QOP != nil && asciiEqualFold(c.QOP, "auth-int") {
		var hb [64]byte
		hbody := hashHex(hb[:], a, body)
		ha2 = hashHex(ha2buf[:], a, []byte(method), c.URI, hbody)
	} else {
		ha2 = hashHex(ha2buf[:], a, []byte(method), c.URI)
	}
	if c.QOP != nil {
		return hashHex(dst, a, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, ha2)
	}
	return hashHex(dst, a, ha1, c.Nonce, ha2)
}
