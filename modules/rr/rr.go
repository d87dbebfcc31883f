// Package rr does Record-Route and loose routing (Kamailio's rr module).
package rr

import (
	"log/slog"
	"regexp"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "rr", New: func() engine.Instance {
		return &RR{AppendFromtag: true, EnableDoubleRR: true}
	}})
}

// RR holds the module parameters (Kamailio's names).
type RR struct {
	// EnableFullLR writes ";lr=on" instead of ";lr" for old devices.
	EnableFullLR bool `toml:"enable_full_lr"`
	// AppendFromtag adds ";ftag=" with the From tag, which is_direction needs.
	AppendFromtag bool `toml:"append_fromtag"`
	// EnableDoubleRR adds two Record-Route headers (";r2=on") when the request leaves from another socket.
	EnableDoubleRR bool `toml:"enable_double_rr"`

	log *slog.Logger
}

// Start keeps the module logger.
func (r *RR) Start(env *engine.Env) error { r.log = env.Log; return nil }

func (r *RR) logger() *slog.Logger {
	if r.log == nil {
		return slog.Default()
	}
	return r.log
}

// Exports: KSR.rr.*.
func (r *RR) Exports() []engine.Export {
	return append([]engine.Export{
		{Name: "record_route", Fn: func(m *engine.Msg) int { return r.recordRoute(m, "") }},
		{Name: "record_route_params", Fn: r.recordRoute},
		{Name: "record_route_preset", Fn: r.recordRoutePreset},
		{Name: "record_route_preset_one", Fn: func(m *engine.Msg, a string) int { return r.recordRoutePreset(m, a, "") }},
		{Name: "record_route_advertised_address", Fn: func(m *engine.Msg, a string) int { return r.recordRoutePreset(m, a, "") }},
		{Name: "add_rr_param", Fn: addRRParam},
		{Name: "loose_route", Fn: r.looseRoute},
		{Name: "loose_route_preloaded", Fn: r.looseRoute},
		{Name: "check_route_param", Fn: checkRouteParam},
		{Name: "is_direction", Fn: r.isDirection},
		{Name: "remove_record_route", Fn: removeRecordRoute},
	}, r.moreExports()...) // more.go
}

// PVs: Kamailio rr's $route_uri (the URI of the first Route of the message as received, parameters
// included: Kamailio's KEMI has no get_route_param, scripts read a Route parameter from this) and
// $rdir(id|name) (the direction of an in-dialog request by the ftag of the Route loose_route took).
func (r *RR) PVs() []engine.PV {
	return []engine.PV{
		{Name: "route_uri", Get: func(m *engine.Msg, _ string) engine.Value {
			if !m.IsRequest() {
				return engine.Value{}
			}
			rs := routes(m)
			if len(rs) == 0 {
				return engine.Value{}
			}
			return engine.StrVal(rs[0].text())
		}},
		{Name: "rdir", Get: func(m *engine.Msg, key string) engine.Value {
			up := !downstream(m)
			switch key {
			case "name":
				if up {
					return engine.StrVal("upstream")
				}
				return engine.StrVal("downstream")
			case "id", "":
				if up {
					return engine.IntVal(2) // Kamailio RR_FLOW_UPSTREAM
				}
				return engine.IntVal(1) // RR_FLOW_DOWNSTREAM
			}
			return engine.Value{}
		}},
	}
}

// uriText is the URI of a name-addr ("<sip:x;lr>" → "sip:x;lr"), or the value itself.
func uriText(v string) string {
	if a, b := strings.IndexByte(v, '<'), strings.IndexByte(v, '>'); a >= 0 && b > a {
		return v[a+1 : b]
	}
	return v
}

// rrState is rr's per-message state (engine.Msg.ModState("rr")).
type rrState struct {
	params      string // add_rr_param, before or after record_route
	recorded    bool
	removed     bool   // remove_record_route: the Record-Route edits write nothing
	routeParams string // params of our Route that loose_route consumed
}

func state(m *engine.Msg) *rrState {
	if st, ok := m.ModState("rr").(*rrState); ok {
		return st
	}
	st := &rrState{}
	m.SetModState("rr", st)
	return st
}

func firstHeaderOff(m *engine.Msg) int {
	if len(m.Raw.Hdrs) > 0 {
		return int(m.Raw.Hdrs[0].Start)
	}
	return m.Raw.HdrsEnd
}

func fromTag(m *engine.Msg) string {
	t, _ := m.FromTag() // raw: recording a route never needs the full parse
	return t
}

// recordRoute inserts Record-Route before the first header, as Kamailio does: the socket the request
// leaves from, and when that differs from the one it came in on, a second one for the incoming socket, both
// with ";r2=on" (double Record-Route).
func (r *RR) recordRoute(m *engine.Msg, params string) int {
	if !m.IsRequest() {
		return -1
	}
	st := state(m)
	if st.recorded {
		return -1 // Kamailio refuses a second record_route for a message
	}
	st.recorded = true
	st.params += params
	in := m.Local
	ftag := ""
	if r.AppendFromtag {
		ftag = fromTag(m)
	}
	m.AddSocketEdit(firstHeaderOff(m), firstHeaderOff(m), func(out *engine.Listener) string {
		if st.removed {
			return ""
		}
		if out == nil || in == nil || !r.EnableDoubleRR || out == in {
			s := in
			if s == nil {
				s = out
			}
			return r.line(sockURI(s), false, ftag, st.params)
		}
		return r.line(sockURI(out), true, ftag, st.params) + r.line(sockURI(in), true, ftag, st.params)
	})
	return 1
}

// recordRoutePreset inserts Record-Route with the given address(es) instead of the socket's.
func (r *RR) recordRoutePreset(m *engine.Msg, addr, addr2 string) int {
	if !m.IsRequest() || addr == "" {
		return -1
	}
	st := state(m)
	if st.recorded {
		return -1 // Kamailio: "Double attempt to record-route"
	}
	st.recorded = true
	ftag := ""
	if r.AppendFromtag {
		ftag = fromTag(m)
	}
	uri := func(a string) string {
		a = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(a, "<"), "sip:"), ">")
		return "sip:" + a
	}
	m.AddSocketEdit(firstHeaderOff(m), firstHeaderOff(m), func(*engine.Listener) string {
		if st.removed {
			return ""
		}
		if addr2 == "" {
			return r.line(uri(addr), false, ftag, st.params)
		}
		return r.line(uri(addr), true, ftag, st.params) + r.line(uri(addr2), true, ftag, st.params)
	})
	return 1
}

func sockURI(l *engine.Listener) string {
	if l == nil {
		return "sip:invalid"
	}
	u := "sip:" + l.SentBy
	if l.Proto != engine.UDP {
		u += ";transport=" + l.Proto.String()
	}
	return u
}

func (r *RR) line(uri string, r2 bool, ftag, params string) string {
	var b strings.Builder
	b.Grow(len("Record-Route: <;r2=on;lr=on;ftag=;>\r\n") + len(uri) + len(ftag) + len(params)) // one allocation
	b.WriteString("Record-Route: <")
	b.WriteString(uri)
	if r2 {
		if r.EnableFullLR {
			b.WriteString(";r2=on")
		} else {
			b.WriteString(";r2=on")
		}
	}
	if r.EnableFullLR {
		b.WriteString(";lr=on")
	} else {
		b.WriteString(";lr")
	}
	if ftag != "" {
		b.WriteString(";ftag=")
		b.WriteString(ftag)
	}
	if params != "" && params[0] != ';' {
		b.WriteByte(';')
	}
	b.WriteString(params)
	b.WriteString(">\r\n")
	return b.String()
}

func addRRParam(m *engine.Msg, p string) int {
	if !m.IsRequest() {
		return -1
	}
	st := state(m)
	if p != "" && p[0] != ';' {
		p = ";" + p
	}
	st.params += p
	return 1
}

// routeValue is one Route header value with its place in the message. uri and raw are views of the
// message buffer (no copy: loose_route runs on every in-dialog request); what is kept past the route is
// copied out (text, and routeParams in looseRoute).
type routeValue struct {
	hdr        int
	start, end int // of the value (no separator) in Buf
	uri        rawsip.URI
	ok         bool // uri parsed
	raw        string
}

// has reports whether the Route URI carries parameter name (lr, r2), as a flag or with a value.
func (rv *routeValue) has(name string) bool {
	_, _, _, ok := rawsip.Param(rv.uri.Params, name)
	return ok
}

// text is the Route's URI as written (Kamailio sets $du and the R-URI from the header text).
func (rv *routeValue) text() string { return strings.Clone(uriText(rv.raw)) }

// routes lists the Route values of m. appendRoutes appends them to out: given a stack array with room,
// the common one or two Route values cost no allocation.
func routes(m *engine.Msg) []routeValue { return appendRoutes(make([]routeValue, 0, 4), m) }

func appendRoutes(out []routeValue, m *engine.Msg) []routeValue {
	for i, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, "route") {
			continue
		}
		off := int(h.VStart)
		v := m.Buf[h.VStart:h.VEnd]
		for len(v) > 0 {
			end := rawsip.FirstValueEnd(v)
			val := strings.TrimSpace(rawsip.View(v[:end]))
			rv := routeValue{hdr: i, start: off, end: off + end, raw: val}
			rv.uri, rv.ok = rawsip.ParseURI(uriText(val))
			out = append(out, rv)
			if end >= len(v) {
				break
			}
			off += end + 1
			v = v[end+1:]
		}
	}
	return out
}

// removeRoutes edits out the first n Route values, whole headers where all their values go.
func removeRoutes(m *engine.Msg, rs []routeValue, n int) {
	for i := 0; i < n; {
		h := m.Raw.Hdrs[rs[i].hdr]
		j := i
		for j < len(rs) && rs[j].hdr == rs[i].hdr {
			j++
		}
		if j <= n { // the whole header goes
			m.AddEdit(int(h.Start), int(h.End), "")
			i = j
			continue
		}
		// remove values i..n-1 of this header and the comma after them
		end := rs[n].start
		for end < int(h.VEnd) && (m.Buf[end] == ' ' || m.Buf[end] == '\t') {
			end++
		}
		m.AddEdit(rs[i].start, end, "")
		break
	}
}

func isOurs(m *engine.Msg, rv *routeValue) bool {
	return rv.ok && rv.uri.Host != "" && m.E.IsMyself(rv.uri.Host, rv.uri.PortNum())
}

// looseRoute is Kamailio's loose_route: 1 when the request was routed by its Route set (our own Route
// entries removed, $du set to the next hop when one remains), -1 when it has no Route to follow. An R-URI
// naming the proxy (a strict router upstream) is handled by afterStrict (RFC 3261 §16.4).
func (r *RR) looseRoute(m *engine.Msg) int {
	if !m.IsRequest() {
		return -1
	}
	var buf [4]routeValue // on the stack: no allocation for the usual Route sets
	rs := appendRoutes(buf[:0], m)
	st := state(m)
	if ru, ok := rawsip.ParseURI(m.RURI()); ok && ru.Params != "" && m.E.IsMyself(ru.Host, ru.PortNum()) {
		if _, _, _, lr := rawsip.Param(ru.Params, "lr"); lr || ru.User == "" && len(rs) > 0 {
			// the previous hop was a strict router: our Record-Route came as R-URI (Kamailio's after_strict)
			return r.afterStrict(m, st, rs)
		}
	}
	if len(rs) == 0 {
		return -1
	}
	n := 0
	for n < len(rs) && isOurs(m, &rs[n]) {
		if p := paramsOf(rs[n].raw); st.routeParams == "" {
			st.routeParams = strings.Clone(p) // rs are views of the buffer; the state outlives the route
		} else {
			st.routeParams += p
		}
		n++
		if !rs[n-1].has("r2") {
			break // only a double Record-Route leaves two entries of ours
		}
	}
	removeRoutes(m, rs, n)
	if n == len(rs) {
		if n == 0 {
			return -1
		}
		return 1 // route by the R-URI
	}
	next := &rs[n]
	if next.has("lr") {
		m.DstURI = next.text()
		return 1
	}
	// strict next hop (RFC 3261 §16.12.1.2): it becomes the R-URI, the R-URI goes last in Route
	m.AppendHeader("Route: <" + m.RURI() + ">")
	m.NewURI = next.text()
	removeRoutes(m, rs[n:], 1)
	return 1
}

// afterStrict is loose_route for a request whose R-URI is ours because the previous hop routed strictly
// (RFC 3261 §16.4), as Kamailio's after_strict: our second Record-Route entry (r2) is skipped; when the
// next Route entry is a strict router (or the endpoint), it becomes the R-URI and leaves the Route set;
// when it is a loose router, it becomes the next hop ($du) and the LAST Route entry, the remote target
// the strict router had moved there, goes back into the R-URI.
func (r *RR) afterStrict(m *engine.Msg, st *rrState, rs []routeValue) int {
	if len(rs) == 0 {
		return -1
	}
	st.routeParams = strings.Clone(paramsOf(m.RURI()))
	i := 0
	if rs[0].has("r2") && isOurs(m, &rs[0]) {
		i = 1
		if len(rs) == 1 {
			removeRoutes(m, rs, 1)
			return -1
		}
	}
	next := &rs[i]
	if !next.has("lr") {
		m.NewURI = next.text()
		removeRoutes(m, rs, i+1)
		return 1
	}
	m.DstURI = next.text()
	last := &rs[len(rs)-1]
	m.NewURI = last.text()
	if len(rs) == i+1 { // the next hop is also the last entry (Kamailio takes it as the target too)
		removeRoutes(m, rs, i+1)
		return 1
	}
	removeRoutes(m, rs, i)
	h := m.Raw.Hdrs[last.hdr]
	if prev := rs[len(rs)-2]; prev.hdr != last.hdr {
		m.AddEdit(int(h.Start), int(h.End), "")
	} else {
		m.AddEdit(prev.end, last.end, "")
	}
	return 1
}

func paramsOf(v string) string {
	if a, b := strings.IndexByte(v, '<'), strings.IndexByte(v, '>'); a >= 0 && b > a {
		v = v[a+1 : b]
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[i:]
	}
	return ""
}

// checkRouteParam matches a regular expression against the parameters of the Route that loose_route took.
func checkRouteParam(m *engine.Msg, re string) int {
	st := state(m)
	if st.routeParams == "" {
		return -1
	}
	rx, err := regexp.Compile(re)
	if err != nil || !rx.MatchString(st.routeParams) {
		return -1
	}
	return 1
}

// isDirection compares the ftag of the Route loose_route took with the From tag: a different tag means the
// callee sends (upstream); no ftag, an empty one or no From tag counts as downstream, as in Kamailio. It
// needs append_fromtag (Kamailio refuses it otherwise).
func (r *RR) isDirection(m *engine.Msg, dir string) int {
	if !r.AppendFromtag {
		r.logger().Error("is_direction needs [modules.rr] append_fromtag = true")
		return -1
	}
	down := downstream(m)
	switch strings.ToLower(dir) {
	case "downstream":
		return b2i(down)
	case "upstream":
		return b2i(!down)
	}
	r.logger().Error("is_direction: unknown direction, use 'downstream' or 'upstream'", "dir", dir)
	return -1
}

func downstream(m *engine.Msg) bool {
	ftag, _, _, ok := rawsip.Param(state(m).routeParams, "ftag")
	if !ok || ftag == "" {
		return true
	}
	tag := fromTag(m)
	return tag == "" || tag == ftag
}

// removeRecordRoute is remove_record_route: the Record-Route added to this message is not written (the
// message still counts as record-routed: a second record_route fails, as in Kamailio).
func removeRecordRoute(m *engine.Msg) int {
	if st, ok := m.ModState("rr").(*rrState); ok {
		st.removed = true
	}
	return 1
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return -1
}
