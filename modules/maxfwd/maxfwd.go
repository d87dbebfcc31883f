// Package maxfwd checks and decrements Max-Forwards (Kamailio's maxfwd module).
package maxfwd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "maxfwd", New: func() engine.Instance { return &Maxfwd{MaxLimit: 70} }})
}

// Maxfwd holds the module parameters.
type Maxfwd struct {
	// MaxLimit caps a received Max-Forwards before it is decremented (Kamailio modparam max_limit, default 70).
	MaxLimit int `toml:"max_limit"`
}

// Validate checks max_limit.
func (mf *Maxfwd) Validate() error {
	if mf.MaxLimit < 1 || mf.MaxLimit > 255 {
		return fmt.Errorf("max_limit: expected 1..255, got %d", mf.MaxLimit)
	}
	return nil
}

// Exports: KSR.maxfwd.*.
func (mf *Maxfwd) Exports() []engine.Export {
	return []engine.Export{
		{Name: "process_maxfwd", Fn: mf.process},
		{Name: "is_maxfwd_lt", Fn: mf.isLess},
	}
}

// process is Kamailio's mf_process_maxfwd_header: no header → insert one with limit before the first header
// (2); 0 → -1 (the script answers 483); a bad value → -2; otherwise decrement (a value above max_limit
// becomes max_limit) → 1.
func (mf *Maxfwd) process(m *engine.Msg, limit int) int {
	if !m.IsRequest() {
		return -2
	}
	val, hdr, ok := value(m)
	switch {
	case !ok && hdr < 0:
		if limit < 0 || limit > 255 {
			return -2
		}
		m.InsertHeader("Max-Forwards: " + strconv.Itoa(limit))
		return 2
	case !ok:
		return -2
	case val == 0:
		return -1
	}
	if val > mf.MaxLimit {
		val = mf.MaxLimit + 1
	}
	decrementInPlace(m, hdr, val-1)
	return 1
}

// decrementInPlace writes x into the received value's digits, right-aligned and padded with spaces, as
// Kamailio's decrement_maxfwd does in its message buffer: the length does not change (so no positions
// move), "10" becomes " 9", and header getters afterwards read the new value, as in Kamailio.
func decrementInPlace(m *engine.Msg, hdr, x int) {
	h := m.Raw.Hdrs[hdr]
	span := m.Buf[h.VStart:h.VEnd]
	i := len(span) - 1
	for ; i >= 0; i-- {
		span[i] = byte('0' + x%10)
		x /= 10
		if x == 0 {
			i--
			break
		}
	}
	for ; i >= 0; i-- {
		span[i] = ' '
	}
}

// isLess is is_maxfwd_lt(max): 1 when Max-Forwards is lower than max, -1 otherwise, -2 when absent or bad.
func (mf *Maxfwd) isLess(m *engine.Msg, max int) int {
	val, _, ok := value(m)
	switch {
	case !ok:
		return -2
	case val < max:
		return 1
	}
	return -1
}

// value returns Max-Forwards and its header index (-1 when absent). Like Kamailio's str2s, it takes
// only digits, up to 65535.
func value(m *engine.Msg) (int, int, bool) {
	i := m.Raw.Find(m.Buf, "max-forwards")
	if i < 0 {
		return 0, -1, false
	}
	s := strings.TrimSpace(string(m.Raw.Hdrs[i].Value(m.Buf)))
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, i, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 65535 {
		return 0, i, false
	}
	return v, i, true
}
