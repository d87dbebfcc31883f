// Package siputils has Kamailio's siputils checks used by routing scripts.
package siputils

import (
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "siputils", New: func() engine.Instance { return &Siputils{} }})
}

// Siputils has no parameters.
type Siputils struct{}

// Exports: KSR.siputils.*; all return 1 for true and -1 for false, as in Kamailio.
func (*Siputils) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "has_totag", Fn: hasTotag},
		{Name: "is_request", Fn: func(m *engine.Msg) int { return b2i(m.IsRequest()) }},
		{Name: "is_reply", Fn: func(m *engine.Msg) int { return b2i(m.IsReply()) }},
		{Name: "is_first_hop", Fn: isFirstHop},
	}, moreExports()...) // more.go
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return -1
}

func hasTotag(m *engine.Msg) int {
	return b2i(m.HasToTag()) // on the raw bytes, no allocation: every request of a call asks
}

// isFirstHop: a request that carries a single Via value, or a reply with two (ours and the sender's).
func isFirstHop(m *engine.Msg) int {
	n := 0
	for _, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, "via") {
			continue
		}
		v := h.Value(m.Buf)
		for len(v) > 0 {
			n++
			end := rawsip.FirstValueEnd(v)
			if end >= len(v) {
				break
			}
			v = v[end+1:]
		}
	}
	if m.IsRequest() {
		return b2i(n == 1)
	}
	return b2i(n == 2)
}
