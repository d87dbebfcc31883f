// Package tmx has Kamailio's tmx helpers about the route and transaction a message is in.
package tmx

import (
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/tm"
)

func init() {
	engine.Register(engine.Module{Name: "tmx", New: func() engine.Instance { return &TMX{} }})
}

// TMX has no parameters.
type TMX struct{}

// Exports: KSR.tmx.*.
func (*TMX) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "t_precheck_trans", Fn: precheck},
		{Name: "t_is_branch_route", Fn: func(m *engine.Msg) int { return b2i(tm.RouteOf(m) == "branch") }},
		{Name: "t_is_failure_route", Fn: func(m *engine.Msg) int { return b2i(tm.RouteOf(m) == "failure") }},
		{Name: "t_is_reply_route", Fn: func(m *engine.Msg) int { return b2i(tm.RouteOf(m) == "reply") }},
	}, moreExports()...) // more.go
}

// precheck is t_precheck_trans: 1 when a transaction for this request already exists (a retransmission
// while the first copy is being handled), -1 otherwise. ACK and CANCEL are never reported.
func precheck(m *engine.Msg) int {
	if !m.IsRequest() || m.IsAck() || m.Method() == "CANCEL" {
		return -1
	}
	inst, ok := m.E.Module("tm")
	if !ok {
		return -1
	}
	return b2i(inst.(*tm.TM).Exists(m))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return -1
}
