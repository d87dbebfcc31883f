// Package corex has Kamailio's corex helpers.
package corex

import (
	"strconv"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "corex", New: func() engine.Instance { return &Corex{} }})
}

// Corex has no parameters.
type Corex struct{}

// Exports: KSR.corex.*.
func (*Corex) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "has_ruri_user", Fn: hasRURIUser},
		{Name: "append_branch", Fn: func(m *engine.Msg) int { return appendBranch(m, "", "") }},
		{Name: "append_branch_uri", Fn: func(m *engine.Msg, uri string) int { return appendBranch(m, uri, "") }},
		{Name: "append_branch_uri_q", Fn: appendBranch},
	}, moreExports()...) // more.go
}

// hasRURIUser: 1 when the Request-URI has a user part, -1 otherwise (Kamailio returns an int here). The
// number of a tel: URI is its user part, as in Kamailio's parse_uri.
func hasRURIUser(m *engine.Msg) int {
	if !m.IsRequest() {
		return -1
	}
	u, ok := rawsip.ParseURI(m.RURI())
	if !ok || u.User == "" {
		return -1
	}
	return 1
}

// appendBranch adds a destination for a parallel fork: uri (or the current R-URI when empty) with $du and
// the branch flags of the message, q as a decimal string ("0.5"; empty = none).
func appendBranch(m *engine.Msg, uri, q string) int {
	if !m.IsRequest() {
		return -1
	}
	du := ""
	if uri == "" {
		uri, du = m.RURI(), m.DstURI
	}
	qv := -1
	if q != "" {
		f, err := strconv.ParseFloat(q, 64)
		if err != nil || f < 0 || f > 1 {
			return -1
		}
		qv = int(f*1000 + 0.5)
	}
	m.Branches = append(m.Branches, engine.Branch{URI: uri, DstURI: du, Q: qv, Flags: m.BFlags})
	return 1
}
