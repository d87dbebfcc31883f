package dispatcher

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// dstAVP holds the destinations left for failover, as Kamailio's $xavp(_dsdst_): the first is the one in
// use, ds_next_dst drops it and uses the next. AVPs are copied into the transaction, so the failure route
// sees what is left. The NUL keeps it out of the script's $avp names.
const dstAVP = "\x00ds_dst"

// Set operations (Kamailio's DS_SETOP_*): what a selection writes.
const (
	opDstURI = 0 // $du
	opRURI   = 1 // R-URI host:port
	opXAVP   = 2 // only the failover list
)

// Algorithms (Kamailio's DS_ALG_*).
const (
	algCallID    = 0
	algFromURI   = 1
	algToURI     = 2
	algRURI      = 3
	algRR        = 4
	algAuthUser  = 5
	algRandom    = 6
	algPV        = 7
	algSerial    = 8
	algWeight    = 9
	algCallLoad  = 10
	algRelWeight = 11
	algParallel  = 12
	algLatency   = 13
)

// dsHash is Kamailio's ds_get_hash over one or two strings. C's char is signed on the platforms
// Kamailio ships for, so bytes above 0x7f count as negative: kept, so a set hashes as Kamailio's does.
func dsHash(x, y string) uint32 {
	var h uint32
	part := func(s string) {
		p := 0
		c := func(i int) uint32 { return uint32(int32(int8(s[i]))) }
		for ; p+4 <= len(s); p += 4 {
			v := c(p)<<24 + c(p+1)<<16 + c(p+2)<<8 + c(p+3)
			h += v ^ (v >> 3)
		}
		var v uint32
		for ; p < len(s); p++ {
			v <<= 8
			v += c(p)
		}
		h += v ^ (v >> 3)
	}
	part(x)
	if y != "" {
		part(y)
	}
	h = (h + (h >> 11)) + ((h >> 13) + (h >> 23))
	if h == 0 {
		return 1
	}
	return h
}

// uriHashKeys is Kamailio's get_uri_hash_keys: the user, and host[:port] with the port only when it is
// not the scheme's default (unless only the user is hashed, flags & 1).
func uriHashKeys(uri string, userOnly bool) (string, string, bool) {
	u, ok := rawsip.ParseURI(strings.TrimSpace(uri))
	if !ok || u.Host == "" {
		return "", "", false
	}
	if userOnly {
		return u.User, "", true
	}
	host := u.Host
	if u.Port != "" {
		def := "5060"
		if strings.EqualFold(u.Scheme, "sips") {
			def = "5061"
		}
		if p, err := strconv.Atoi(u.Port); err != nil || strconv.Itoa(p) != def {
			host += ":" + u.Port
		}
	}
	return u.User, host, true
}

func (ds *Dispatcher) headerURIHash(m *engine.Msg, name string) (uint32, bool) {
	v, ok := m.Header(name)
	if !ok {
		return 0, false
	}
	_, uri, _, ok := rawsip.NameAddr(v)
	if !ok {
		return 0, false
	}
	k1, k2, ok := uriHashKeys(uri, ds.Flags&flagUserOnly != 0)
	if !ok {
		return 0, false
	}
	return dsHash(k1, k2), true
}

// pick returns the index the algorithm chooses in s (before skipping inactive destinations), and for
// round robin the counter value it took.
func (ds *Dispatcher) pick(m *engine.Msg, s *dsSet, alg int) (idx uint32, rr bool, rrv uint32, ok bool) {
	n := uint32(len(s.dests))
	switch alg {
	case algCallID:
		cid, found := m.Header("call-id")
		if !found {
			return 0, false, 0, false
		}
		return dsHash(strings.TrimSpace(cid), "") % n, false, 0, true
	case algFromURI, algToURI:
		name := "from"
		if alg == algToURI {
			name = "to"
		}
		h, found := ds.headerURIHash(m, name)
		return h % n, false, 0, found
	case algRURI:
		k1, k2, found := uriHashKeys(m.RURI(), ds.Flags&flagUserOnly != 0)
		if !found {
			return 0, false, 0, false
		}
		return dsHash(k1, k2) % n, false, 0, true
	case algRR:
		for {
			v := s.last.Load()
			if s.last.CompareAndSwap(v, (v+1)%n) {
				return v % n, true, (v + 1) % n, true
			}
		}
	case algRandom:
		return rand.Uint32N(n), false, 0, true
	case algSerial, algParallel:
		return 0, false, 0, true
	case algWeight:
		i := s.wlast.Add(1) - 1
		return uint32(s.wlist[i%100]) % n, false, 0, true
	case algRelWeight:
		i := s.rwlast.Add(1) - 1
		rw := s.rwlist.Load()
		if rw == nil {
			return 0, false, 0, true
		}
		return uint32(rw[i%100]) % n, false, 0, true
	}
	return 0, false, 0, false
}

// selectDst is Kamailio's ds_select_dst_limit / ds_manage_routes: choose a destination of set with alg,
// write it per op, and (failover, flags & 2) keep the others, up to limit in all, for ds_next_dst.
func (ds *Dispatcher) selectDst(m *engine.Msg, set, alg, limit, op int) int {
	if !m.IsRequest() {
		return -1
	}
	l := ds.list.Load()
	if l == nil || len(l.sets) == 0 {
		return -1
	}
	if op == opDstURI && ds.ForceDst == 0 && m.DstURI != "" {
		return -1
	}
	s := l.sets[set]
	if s == nil || len(s.dests) == 0 {
		return -1
	}
	switch alg {
	case algCallLoad:
		ds.log.Warn("dispatcher: algorithm 10 (call load) needs the dialog module, which siplua does not have", "set", set)
		return -1
	case algAuthUser, algPV, algLatency:
		ds.log.Warn("dispatcher: algorithm not supported", "alg", alg, "set", set)
		return -1
	}
	hash, rr, rrv, ok := ds.pick(m, s, alg)
	if !ok {
		if alg < 0 || alg > algLatency {
			ds.log.Warn("dispatcher: unknown algorithm", "alg", alg)
		}
		return -1
	}
	n := uint32(len(s.dests))
	i := hash
	for skip(s.dests[i].state.Load()) {
		i = (i + 1) % n
		if i == hash {
			return -1 // no active destination
		}
	}
	d := s.dests[i]
	if op != opXAVP && !ds.push(m, d.uri, op) {
		return -1
	}
	if rr && i != hash {
		s.last.CompareAndSwap(rrv, (i+1)%n) // continue after the one used, unless moved meanwhile
	}
	if alg == algParallel {
		// Kamailio's ds_add_branches: every destination after the chosen one becomes a branch (whatever
		// its state), forked in parallel by t_relay; no failover list
		if op != opXAVP {
			ds.addBranches(m, s, int(i), op)
		}
		return 1
	}
	if ds.Flags&flagFailover == 0 {
		return 1
	}
	if limit <= 0 {
		limit = int(^uint32(0) >> 1)
	}
	cnt := min(limit, len(s.dests))
	vals := make([]engine.Value, 0, cnt)
	vals = append(vals, d.avp)
	for j := i + 1; j < n && len(vals) < limit; j++ {
		if !skip(s.dests[j].state.Load()) {
			vals = append(vals, s.dests[j].avp)
		}
	}
	for j := uint32(0); j < i && len(vals) < limit; j++ {
		if !skip(s.dests[j].state.Load()) {
			vals = append(vals, s.dests[j].avp)
		}
	}
	if m.AVPs == nil {
		m.AVPs = map[string][]engine.Value{}
	}
	m.AVPs[dstAVP] = vals
	return 1
}

// push writes a destination: $du, or the R-URI's host, port and parameters (Kamailio's SET_HOSTALL_T,
// keeping the user).
func (ds *Dispatcher) push(m *engine.Msg, uri string, op int) bool {
	switch op {
	case opDstURI:
		m.DstURI = uri
		return true
	case opRURI:
		cur, ok := rawsip.ParseURI(m.RURI())
		if !ok {
			return false
		}
		hostall := uri
		if i := strings.IndexByte(uri, ':'); i >= 0 {
			hostall = uri[i+1:]
		}
		var b strings.Builder
		b.WriteString(cur.Scheme)
		b.WriteByte(':')
		if cur.User != "" || cur.HasPass {
			b.WriteString(cur.User)
			if cur.HasPass {
				b.WriteByte(':')
				b.WriteString(cur.Password)
			}
			b.WriteByte('@')
		}
		b.WriteString(hostall)
		m.NewURI = b.String()
		return true
	}
	return true
}

// addBranches appends the destinations after index i as branches: the R-URI with the destination as
// $du, or (op R-URI) the R-URI's user at the destination's host.
func (ds *Dispatcher) addBranches(m *engine.Msg, s *dsSet, i, op int) {
	ruri := m.RURI()
	cur, _ := rawsip.ParseURI(ruri)
	for _, d := range s.dests[i+1:] {
		b := engine.Branch{URI: ruri, DstURI: d.uri, Q: -1}
		if op == opRURI {
			b.DstURI = ""
			b.URI = d.uri
			if cur.User != "" {
				scheme, rest, ok := strings.Cut(d.uri, ":")
				if !ok {
					continue
				}
				b.URI = scheme + ":" + cur.User + "@" + rest
			}
		}
		m.Branches = append(m.Branches, b)
	}
}

// record splits a failover record.
func record(v engine.Value) (set int, uri, attrs string) {
	s, rest, _ := strings.Cut(v.S, "\x00")
	uri, attrs, _ = strings.Cut(rest, "\x00")
	set, _ = strconv.Atoi(s)
	return set, uri, attrs
}

// updateDst is Kamailio's ds_update_dst: next drops the destination in use and takes the next one.
func (ds *Dispatcher) updateDst(m *engine.Msg, next bool, op int) int {
	if next && ds.Flags&flagFailover == 0 {
		return -1
	}
	vals := m.AVPs[dstAVP]
	if len(vals) == 0 {
		return -1
	}
	if next {
		vals = vals[1:]
		m.AVPs[dstAVP] = vals
		if len(vals) == 0 {
			return -1
		}
	}
	_, uri, _ := record(vals[0])
	if !ds.push(m, uri, op) {
		return -1
	}
	return 1
}

// markDst is Kamailio's ds_mark_dst: the destination in use gets state; the event callback runs on
// this message when it goes down or up.
func (ds *Dispatcher) markDst(m *engine.Msg, state int) int {
	if ds.Flags&flagFailover == 0 {
		return -1
	}
	vals := m.AVPs[dstAVP]
	if len(vals) == 0 {
		return -1
	}
	set, uri, _ := record(vals[0])
	// as Kamailio: a reply gives its code; a request (request or failure route) 820
	rc := rctx{code: 820}
	if m.IsReply() {
		rc = rctx{flags: 1, code: m.StatusCode()}
		if m.IsReply() {
			rc.reason = m.Reason()
		}
	}
	if ds.updateState(m, set, uri, uint32(state), rc) != nil {
		return -1
	}
	return 1
}

// isFromList is Kamailio's ds_is_addr_from_list: does the source (or uri's address) belong to set
// (-1 = any set)? mode: 1 ignore port, 2 ignore protocol, 4 only active destinations.
func (ds *Dispatcher) isFromList(m *engine.Msg, set, mode int, uri string) int {
	l := ds.list.Load()
	if l == nil {
		return -1
	}
	ip, port, proto := m.Src.Addr().Unmap(), int(m.Src.Port()), m.Proto
	if uri != "" {
		u, ok := rawsip.ParseURI(uri)
		if !ok {
			return -1
		}
		a, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
		if err != nil {
			return -1 // host names are not resolved on a route worker
		}
		ip, port, proto = a.Unmap(), 0, engine.ProtoNone
		if u.Port != "" {
			port, _ = strconv.Atoi(u.Port)
		}
		if tr, _, _, ok := rawsip.Param(u.Params, "transport"); ok {
			proto, _ = engine.ParseProto(tr)
		}
	}
	match := func(s *dsSet) *dest {
		for _, d := range s.dests {
			if d.ip == ip && (mode&1 != 0 || d.uriPort == 0 || d.uriPort == port) &&
				(mode&2 != 0 || d.uriProt == proto) && (mode&4 == 0 || !skip(d.state.Load())) {
				return d
			}
		}
		return nil
	}
	if set == -1 {
		for _, id := range l.ids {
			if d := match(l.sets[id]); d != nil {
				ds.setPV(m, ds.setidPV, engine.IntVal(int64(id)))
				if d.attrs != "" {
					ds.setPV(m, ds.attrsPV, engine.StrVal(d.attrs))
				}
				return 1
			}
		}
		return -1
	}
	s := l.sets[set]
	if s == nil {
		return -1
	}
	if d := match(s); d != nil {
		if d.attrs != "" {
			ds.setPV(m, ds.attrsPV, engine.StrVal(d.attrs))
		}
		return 1
	}
	return -1
}

// isActive is Kamailio's ds_is_active_uri: 1 when set has an active destination (equal to uri when
// given).
func (ds *Dispatcher) isActive(set int, uri string) int {
	l := ds.list.Load()
	if l == nil {
		return -1
	}
	s := l.sets[set]
	if s == nil {
		return -1
	}
	for _, d := range s.dests {
		if !skip(d.state.Load()) && (uri == "" || d.uri == uri) {
			return 1
		}
	}
	return -1
}

// selectRoutes is ds_select_routes(rules, mode): rules "set=alg;set=alg", mode 0/d ($du), 1/r (R-URI),
// 2/x (only the failover list); the first rule that selects sets the destination, every rule's
// destinations go into the failover list, up to limit in all.
func (ds *Dispatcher) selectRoutes(m *engine.Msg, rules, mode string, limit int) int {
	op := -1
	switch mode {
	case "0", "d", "D":
		op = opDstURI
	case "1", "r", "R":
		op = opRURI
	case "2", "x", "X":
		op = opXAVP
	}
	if op < 0 {
		ds.log.Warn("ds_select_routes: mode: expected 0/d, 1/r or 2/x", "mode", mode)
		return -1
	}
	if limit <= 0 {
		limit = int(^uint32(0) >> 1)
	}
	var all []engine.Value
	done := false
	for _, r := range strings.Split(rules, ";") {
		if strings.TrimSpace(r) == "" {
			continue
		}
		ss, as, ok := strings.Cut(r, "=")
		set, err1 := strconv.Atoi(strings.TrimSpace(ss))
		alg, err2 := strconv.Atoi(strings.TrimSpace(as))
		if !ok || err1 != nil || err2 != nil {
			ds.log.Warn("ds_select_routes: rule: expected set=alg", "rule", r)
			return -1
		}
		saved := m.AVPs[dstAVP]
		o := opXAVP
		if !done {
			o = op
		}
		if ds.selectDst(m, set, alg, limit-len(all), o) > 0 {
			done = true
			all = append(all, m.AVPs[dstAVP]...)
		}
		if m.AVPs != nil {
			m.AVPs[dstAVP] = saved
		}
		if len(all) >= limit {
			break
		}
	}
	if !done {
		return -1
	}
	if ds.Flags&flagFailover != 0 {
		m.AVPs[dstAVP] = all
	}
	return 1
}
