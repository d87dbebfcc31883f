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
	// MaxLimit caps a received Max-Forwards before it is decremented (Kamailio modparam max_limit, 70):
	// a higher value goes on as max_limit.
	MaxLimit int `toml:"max_limit"`
}

// Validate checks max_limit.
func (mf *Maxfwd) Validate() error {
	if mf.MaxLimit < 1 || mf.MaxLimit > 256 {
		return fmt.Errorf("max_limit: expected 1..256, got %d", mf.MaxLimit)
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

// process is Kamailio's mf_process_maxfwd_header: no header → insert one with limit after the request line
// (2); 0 → -1 (the script answers 483); otherwise decrement (a value over max_limit goes on as max_limit) →
// 1; a bad value → -2. limit is only used when the header is missing, as in Kamailio.
func (mf *Maxfwd) process(m *engine.Msg, limit int) int {
	if m.Req == nil {
		return -2
	}
	val, hdr, ok := value(m)
	switch {
	case !ok && hdr < 0:
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
	h := m.Raw.Hdrs[hdr]
	m.AddEdit(h.VStart, h.VEnd, strconv.Itoa(val-1))
	return 1
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

// value returns Max-Forwards and its header index (-1 when absent).
func value(m *engine.Msg) (int, int, bool) {
	i := m.Raw.Find(m.Buf, "max-forwards")
	if i < 0 {
		return 0, -1, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(m.Raw.Hdrs[i].Value(m.Buf))))
	if err != nil || v < 0 || v > 255 {
		return 0, i, false
	}
	return v, i, true
}
