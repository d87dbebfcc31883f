package pv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Spec is a compiled pseudo-variable: "$name", "$name(arg)", or the long form "$(name(arg)[idx]{tr}...)"
// with an index and a chain of transformations, as Kamailio's pv_parse_spec accepts them. Specs are
// compiled once (see PV.compile) and evaluated many times.
type Spec struct {
	Name  string // class: "ru", "hdr", "xavp"
	Arg   string // inner name: "Via" of $hdr(Via), "" when none
	Idx   Index  // [n], [-n], [*] or [$pv] of the long form
	Trans []Trans
	Raw   string // the text as written, for logs
}

// IndexKind tells the form of a spec's index.
type IndexKind uint8

const (
	IdxNone IndexKind = iota
	IdxInt
	IdxAll
	IdxPV
)

// Index is the [..] of a long-form spec.
type Index struct {
	Kind IndexKind
	N    int   // IdxInt: from the first (0) or from the last (-1)
	PV   *Spec // IdxPV: an integer-valued variable
}

// ParseSpec splits a spec into class name and argument (kept for callers that do not evaluate it). Specs
// with an index or transformations are valid too; their name and inner argument are returned.
func ParseSpec(s string) (name, arg string, ok bool) {
	sp, err := Compile(s)
	if err != nil {
		return "", "", false
	}
	return sp.Name, sp.Arg, true
}

// Compile parses a whole string as one spec; text after the spec is an error (Kamailio's KSR.pv.get
// rejects "$ru x").
func Compile(s string) (*Spec, error) {
	sp, n, err := parseSpecAt(s, 0)
	if err != nil {
		return nil, err
	}
	if n != len(s) {
		return nil, fmt.Errorf("pseudo-variable %q: unexpected text %q after the variable", s, s[n:])
	}
	return sp, nil
}

var errNoDollar = errors.New("a pseudo-variable starts with '$'")

// parseSpecAt parses the spec that starts at s[0] ('$'), returning it and its length, depth limiting
// nested specs (index and transformation parameters).
func parseSpecAt(s string, depth int) (*Spec, int, error) {
	if depth > 8 {
		return nil, 0, fmt.Errorf("pseudo-variable %q: nested too deep", s)
	}
	if len(s) < 2 || s[0] != '$' {
		return nil, 0, fmt.Errorf("pseudo-variable %q: %w", s, errNoDollar)
	}
	if s[1] != '(' {
		sp := &Spec{}
		n, err := parseNameArg(s, 1, sp)
		if err != nil {
			return nil, 0, err
		}
		sp.Raw = s[:n]
		return sp, n, nil
	}
	// long form: $( name[(arg)] [idx] {tr}* )
	sp := &Spec{}
	i, err := parseNameArg(s, 2, sp)
	if err != nil {
		return nil, 0, err
	}
	if i < len(s) && s[i] == '[' {
		end := strings.IndexByte(s[i:], ']')
		if end < 0 {
			return nil, 0, fmt.Errorf("pseudo-variable %q: index without ']'", s)
		}
		if sp.Idx, err = parseIndex(s[i+1:i+end], depth); err != nil {
			return nil, 0, fmt.Errorf("pseudo-variable %q: %w", s, err)
		}
		i += end + 1
	}
	for i < len(s) && s[i] == '{' {
		tr, n, err := parseTrans(s[i:], depth)
		if err != nil {
			return nil, 0, fmt.Errorf("pseudo-variable %q: %w", s, err)
		}
		sp.Trans = append(sp.Trans, tr)
		i += n
	}
	if i >= len(s) || s[i] != ')' {
		return nil, 0, fmt.Errorf("pseudo-variable %q: expected ')' at offset %d", s, i)
	}
	i++
	sp.Raw = s[:i]
	return sp, i, nil
}

// parseNameArg reads "name" or "name(arg)" at s[i:], returning the offset after it.
func parseNameArg(s string, i int, sp *Spec) (int, error) {
	start := i
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	if i == start {
		return 0, fmt.Errorf("pseudo-variable %q: missing name", s)
	}
	sp.Name = s[start:i]
	if i >= len(s) || s[i] != '(' {
		return i, nil
	}
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				sp.Arg = s[i+1 : j]
				if sp.Arg == "" {
					return 0, fmt.Errorf("pseudo-variable %q: empty inner name", s)
				}
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("pseudo-variable %q: unbalanced parentheses", s)
}

func parseIndex(s string, depth int) (Index, error) {
	switch {
	case s == "*":
		return Index{Kind: IdxAll}, nil
	case strings.HasPrefix(s, "$"):
		sp, n, err := parseSpecAt(s, depth+1)
		if err != nil || n != len(s) {
			return Index{}, fmt.Errorf("bad index %q", s)
		}
		return Index{Kind: IdxPV, PV: sp}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return Index{}, fmt.Errorf("bad index %q: expected a number, * or a variable", s)
	}
	return Index{Kind: IdxInt, N: n}, nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}
