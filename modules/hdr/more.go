package hdr

import (
	"strings"

	"github.com/siplua/siplua/engine"
)

// matchContent is hdr.match_content(name, op, value, which), Kamailio 5.6's: op "eq" / "ne" (whole body,
// case-insensitive), "sw" (starts with), "in" (contains); which "f" the first header of that name, "l" the
// last, "a" all of them, "o" at least one. "re" is refused, as in Kamailio 5.6 (not implemented there).
func matchContent(m *engine.Msg, name, op, val, which string) bool {
	var opv int
	switch strings.ToLower(op) {
	case "eq":
		opv = 1
	case "ne":
		opv = 2
	case "sw":
		opv = 3
	case "in":
		opv = 4
	default:
		return false
	}
	if which == "" {
		return false
	}
	w := which[0] | 0x20
	if w != 'f' && w != 'l' && w != 'a' && w != 'o' {
		return false
	}
	lval := strings.ToLower(val)
	matched := false
	for i, body := range m.Headers(name) {
		b := strings.TrimSpace(body)
		switch opv {
		case 1:
			matched = strings.EqualFold(b, val)
		case 2:
			matched = !strings.EqualFold(b, val)
		case 3:
			matched = len(b) >= len(val) && strings.EqualFold(b[:len(val)], val)
		case 4:
			matched = strings.Contains(strings.ToLower(b), lval)
		}
		switch {
		case i == 0 && w == 'f':
			return matched
		case w == 'a' && !matched:
			return false
		case w == 'o' && matched:
			return true
		}
	}
	return matched
}
