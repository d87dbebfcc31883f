package rr

import "github.com/siplua/siplua/engine"

// The rest of Kamailio 5.6's rr KEMI functions.

func (r *RR) moreExports() []engine.Export {
	return []engine.Export{
		// loose_route_mode(mode): mode 1 skips Kamailio's outbound flow-token handling, which siplua does
		// not do anyway: both modes are loose_route
		{Name: "loose_route_mode", Fn: func(m *engine.Msg, mode int) int { return r.looseRoute(m) }},
		{Name: "next_hop_route", Fn: nextHopRoute},
	}
}

// nextHopRoute is next_hop_route: 1 when loose_route sent the request to the address of a Route header
// ($du is the first Route that is not the proxy's: Kamailio's FL_ROUTE_ADDR), -1 otherwise.
func nextHopRoute(m *engine.Msg) int {
	if m.DstURI == "" || !m.IsRequest() {
		return -1
	}
	rs := routes(m)
	for i := range rs {
		if isOurs(m, &rs[i]) {
			continue
		}
		if uriText(rs[i].raw) == m.DstURI {
			return 1
		}
		return -1
	}
	return -1
}
