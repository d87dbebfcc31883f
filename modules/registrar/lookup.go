package registrar

import (
	"encoding/hex"
	"hash/fnv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/modules/usrloc"
)

func (r *Registrar) lookup(m *engine.Msg, table string) int { return r.doLookup(m, table, "", false) }

func (r *Registrar) lookupURI(m *engine.Msg, table, uri string) int {
	return r.doLookup(m, table, uri, false)
}

// lookupToDset is lookup_to_dset: every contact becomes a branch; the R-URI is not changed.
func (r *Registrar) lookupToDset(m *engine.Msg, table, uri string) int {
	return r.doLookup(m, table, uri, true)
}

// allowed is Kamailio's allowed_method: with method_filtering, an initial request (no To tag) goes only
// to contacts whose Allow listed its method.
func (r *Registrar) allowed(m *engine.Msg, b *usrloc.Binding) bool {
	if !r.MethodFiltering || !m.IsRequest() || b.Methods == 0 || b.Methods == allMethods {
		return true
	}
	if to, ok := m.Header("to"); ok && hasToTag(to) {
		return true
	}
	return b.Methods&methodBit(m.Method()) != 0
}

func hasToTag(to string) bool {
	if i := strings.IndexByte(to, '>'); i >= 0 {
		to = to[i:]
	}
	_, ok := param(to, "tag")
	return ok
}

// dest is where a binding is reached: its Path's first hop (with the Path as route set), else its
// received address, else the contact itself (""). With path_check_local a first Path hop that is this
// proxy is skipped (a location table shared by several proxies, each saving itself as Path).
func (r *Registrar) dest(m *engine.Msg, b *usrloc.Binding) (du, path string, ok bool) {
	path = b.Path
	for path != "" {
		hop, _, good := firstPathURI(path)
		if !good {
			return "", "", false
		}
		if !r.PathCheckLocal || m.E == nil || !r.isMyself(m.E, hop) {
			return hop, path, true
		}
		end := rawsip.FirstValueEnd([]byte(path))
		if end >= len(path) {
			path = ""
			break
		}
		path = strings.TrimSpace(path[end+1:])
	}
	return b.Received, "", true
}

func (r *Registrar) isMyself(e *engine.Engine, uri string) bool {
	u, ok := rawsip.ParseURI(uri)
	if !ok {
		return false
	}
	return e.IsMyself(u.Host, u.PortNum())
}

// bindings resolves the AOR of uri and looks up its bindings in table: ok is false when uri has no AOR
// (nothing is looked up); err says why the lookup failed (no location table, or the store's error).
func (r *Registrar) bindings(table, uri string) (aor string, bs []usrloc.Binding, ok bool, err error) {
	aor, ok = r.aor(uri)
	if !ok {
		return "", nil, false, nil
	}
	st, err := r.store()
	if err != nil {
		return aor, nil, true, err
	}
	bs, err = st.Lookup(table, aor)
	return aor, bs, true, err
}

// doLookup is Kamailio's lookup: the AOR of uri (the R-URI when "") is looked up; the first live contact
// (highest q) becomes the R-URI, with $du and the route set from its Path or received address and its
// branch flags added; with append_branches the others become branches. dset (lookup_to_dset) makes every
// contact a branch. 1 found, -1 none, -2 found but none allows the method, -3 error.
func (r *Registrar) doLookup(m *engine.Msg, table, uri string, dset bool) int {
	r = r.live()
	if uri == "" {
		uri = m.RURI()
	}
	aor, bs, ok, err := r.bindings(table, uri)
	if !ok {
		return -1 // Kamailio: failed to extract the AOR
	}
	if err != nil {
		r.logger().Error("lookup failed", "module", "registrar", "aor", aor, "err", err)
		return -3
	}
	now := time.Now().Unix()
	first := -1
	ret := -1
	for i := range bs {
		if !bs[i].Live(now) {
			continue
		}
		if r.allowed(m, &bs[i]) {
			first = i
			break
		}
		ret = -2
	}
	if first < 0 {
		return ret
	}
	rest := first
	if !dset {
		b := &bs[first]
		du, path, ok := r.dest(m, b)
		if !ok {
			r.logger().Error("lookup: bad Path in binding", "module", "registrar", "aor", aor, "path", b.Path)
			return -3
		}
		m.NewURI, m.DstURI, m.Path = b.Contact, du, path
		m.SetRURIQ(int(b.Q))
		m.BFlags |= b.CFlags
		rest = first + 1
		if !r.AppendBranches {
			return 1
		}
	}
	for i := rest; i < len(bs); i++ {
		b := &bs[i]
		if !b.Live(now) || !r.allowed(m, b) {
			continue
		}
		du, path, ok := r.dest(m, b)
		if !ok {
			continue // as Kamailio: give the next branches a chance
		}
		m.Branches = append(m.Branches, engine.Branch{URI: b.Contact, DstURI: du, Q: int(b.Q), Flags: b.CFlags, Path: path})
	}
	return 1
}

// lookupBranches is lookup_branches: lookup of the R-URI and of every branch that has only a URI (no
// $du, Path or flags), each found branch replaced by the first contact of its AOR. 1 when any was found,
// else what the last lookup returned.
func (r *Registrar) lookupBranches(m *engine.Msg, table string) int {
	start := m.Branches
	if len(start) == 0 {
		return r.lookup(m, table)
	}
	m.Branches = nil
	ret := r.lookup(m, table)
	found := ret > 0
	ruri, du, path, bflags, q, added := m.NewURI, m.DstURI, m.Path, m.BFlags, m.RURIQ(), m.Branches
	out := make([]engine.Branch, 0, len(start)+len(added))
	for _, b := range start {
		if b.DstURI != "" || b.Path != "" || b.Flags != 0 {
			out = append(out, b)
			continue
		}
		m.NewURI, m.DstURI, m.Path, m.BFlags, m.Branches = b.URI, "", "", 0, nil
		m.SetRURIQ(b.Q)
		ret = r.lookup(m, table)
		if ret > 0 {
			found = true
			out = append(out, engine.Branch{URI: m.NewURI, DstURI: m.DstURI, Q: m.RURIQ(), Flags: m.BFlags, Path: m.Path})
			out = append(out, m.Branches...)
			continue
		}
		out = append(out, b)
	}
	m.NewURI, m.DstURI, m.Path, m.BFlags = ruri, du, path, bflags
	m.SetRURIQ(q)
	m.Branches = append(out, added...)
	if found {
		return 1
	}
	return ret
}

// registered is registered(table): 1 when the AOR of the R-URI (the To URI of a reply) has a live
// contact, -1 otherwise. Nothing in the message changes.
func (r *Registrar) registered(m *engine.Msg, table string) int { return r.registeredURI(m, table, "") }

func (r *Registrar) registeredURI(m *engine.Msg, table, uri string) int {
	return r.registeredAction(m, table, uri, 0, 0)
}

// registeredFlags is registered(table, uri, match_option): registered_uri with the contacts narrowed by
// the values in the xavp_cfg xavp (flag 1 its match_callid child, 2 match_received, 4 match_contact; a
// flag whose child is missing or empty narrows nothing).
func (r *Registrar) registeredFlags(m *engine.Msg, table, uri string, flags int) int {
	return r.registeredAction(m, table, uri, flags, 0)
}

// Kamailio's match_option bits of registered().
const (
	matchCallID   = 1
	matchReceived = 2
	matchContact  = 4
)

// registeredAction is registered(table, uri, match_option, match_action). Kamailio's match_action 1
// copies the matched contact's stored xavp (xavp_rcd saved with the contact) to the message; siplua's
// bindings keep no xavp (save stores none), so there is nothing to copy and the action changes nothing,
// exactly as Kamailio does for a contact without one. An empty uri is the R-URI (the To URI of a reply).
func (r *Registrar) registeredAction(m *engine.Msg, table, uri string, flags, action int) int {
	r = r.live()
	if uri == "" {
		if m.IsRequest() {
			uri = m.RURI()
		} else {
			var ok bool
			if uri, ok = toURI(m); !ok {
				return -1
			}
		}
	}
	aor, bs, ok, err := r.bindings(table, uri)
	if !ok {
		return -1
	}
	if err != nil {
		r.logger().Error("registered: lookup failed", "module", "registrar", "aor", aor, "err", err)
		return -1
	}
	var callID, received, contact string
	if flags != 0 && r.XavpCfg != "" && m != nil && m.E != nil {
		if pv, ok := m.E.LookupPV("xavp"); ok && pv.Get != nil {
			get := func(bit int, child string) string {
				if flags&bit == 0 {
					return ""
				}
				v := pv.Get(m, r.XavpCfg+"=>"+child)
				if v.Kind == engine.Null {
					return ""
				}
				return v.String()
			}
			callID = get(matchCallID, "match_callid")
			received = get(matchReceived, "match_received")
			contact = get(matchContact, "match_contact")
		}
	}
	now := time.Now().Unix()
	for i := range bs {
		b := &bs[i]
		if !b.Live(now) ||
			callID != "" && b.CallID != callID ||
			received != "" && b.Received != received ||
			contact != "" && b.Contact != contact {
			continue
		}
		return 1
	}
	return -1
}

// unregister removes every contact of the AOR of uri: 1 (also when there was none, as Kamailio), -1 bad
// URI, -2 store error.
func (r *Registrar) unregister(m *engine.Msg, table, uri string) int {
	r = r.live()
	if uri == "" {
		var ok bool
		if uri, ok = toURI(m); !ok {
			return -1
		}
	}
	aor, ok := r.aor(uri)
	if !ok {
		return -1
	}
	st, err := r.store()
	if err != nil {
		return -2
	}
	if _, err := st.Delete(table, aor, ""); err != nil {
		r.logger().Error("unregister failed", "module", "registrar", "aor", aor, "err", err)
		return -2
	}
	return 1
}

// ruid is a binding's record unique ID ($ulc(p=>ruid)): stable for the AOR and contact, so that
// unregister_ruid finds the binding again on every node sharing the store.
func ruid(b *usrloc.Binding) string {
	h := fnv.New64a()
	h.Write([]byte(b.AOR))
	h.Write([]byte{0})
	h.Write([]byte(b.Contact))
	return "uloc-" + hex.EncodeToString(h.Sum(nil))
}

// unregisterRUID removes the contact with that ruid: 1, -1 bad URI, -2 store error, -3 not found. With
// uri "" every AOR of the table is searched (an administrative call, not for the routing path).
func (r *Registrar) unregisterRUID(m *engine.Msg, table, uri, id string) int {
	r = r.live()
	if id == "" {
		return r.unregister(m, table, uri)
	}
	st, err := r.store()
	if err != nil {
		return -2
	}
	var aor, contact string
	if uri != "" {
		a, ok := r.aor(uri)
		if !ok {
			return -1
		}
		bs, err := st.Lookup(table, a)
		if err != nil {
			return -2
		}
		for i := range bs {
			if ruid(&bs[i]) == id {
				aor, contact = a, bs[i].Contact
				break
			}
		}
	} else {
		err := st.Range(table, func(_ string, b *usrloc.Binding) bool {
			if ruid(b) == id {
				aor, contact = b.AOR, b.Contact
				return false
			}
			return true
		})
		if err != nil {
			return -2
		}
	}
	if contact == "" {
		return -3
	}
	ok, err := st.Delete(table, aor, contact)
	if err != nil {
		return -2
	}
	if !ok {
		return -3
	}
	return 1
}

// setQOverride is set_q_override(q): the q ("0.5") every contact of the next save of this message gets.
func (r *Registrar) setQOverride(m *engine.Msg, q string) int {
	v, ok := parseQ(q)
	if !ok {
		return -1
	}
	r.state(m, true).qOverride = v
	return 1
}

// addSockHdr is add_sock_hdr(name): adds "name: proto:ip:port" of the receiving socket to the request.
func (r *Registrar) addSockHdr(m *engine.Msg, name string) int {
	if !m.IsRequest() || m.Local == nil || name == "" || strings.ContainsAny(name, ": \r\n") {
		return -1
	}
	m.AppendHeader(name + ": " + m.Local.String())
	return 1
}
