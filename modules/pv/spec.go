package pv

// ParseSpec splits "$name", "$name(arg)" or "$(name(arg))" into class name and argument. Indexes and
// transformations ("$(hdr(X)[1])", "$(ru{s.len})") are not supported and make the spec invalid, so a
// script gets null rather than a silently different value.
func ParseSpec(s string) (name, arg string, ok bool) {
	if len(s) < 2 || s[0] != '$' {
		return "", "", false
	}
	rest := s[1:]
	if rest[0] == '(' {
		if rest[len(rest)-1] != ')' {
			return "", "", false
		}
		rest = rest[1 : len(rest)-1]
	}
	i := 0
	for i < len(rest) && isNameChar(rest[i]) {
		i++
	}
	if i == 0 {
		return "", "", false
	}
	name = rest[:i]
	rest = rest[i:]
	if rest == "" {
		return name, "", true
	}
	if rest[0] != '(' || rest[len(rest)-1] != ')' || len(rest) < 3 {
		return "", "", false
	}
	arg = rest[1 : len(rest)-1]
	depth := 0
	for j := 0; j < len(arg); j++ {
		switch arg[j] {
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 {
				return "", "", false
			}
		}
	}
	if depth != 0 {
		return "", "", false
	}
	return name, arg, true
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}
