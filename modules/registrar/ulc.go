package registrar

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/usrloc"
)

// profile is what reg_fetch_contacts stored for $ulc(profile=>attr): a copy of the AOR's live bindings.
type profile struct {
	aor, table string
	bs         []usrloc.Binding
}

// fetchContacts is reg_fetch_contacts(table, uri, profile): 1 when the AOR has contacts, -1 otherwise.
// The profile lives for the message being routed (Kamailio keeps it in the process until freed).
func (r *Registrar) fetchContacts(m *engine.Msg, table, uri, name string) int {
	r = r.live()
	st := r.state(m, true)
	if st.profiles == nil {
		st.profiles = map[string]*profile{}
	}
	delete(st.profiles, name)
	if name == "" {
		return -1
	}
	aor, bs, ok, err := r.bindings(table, uri)
	if !ok {
		return -1
	}
	if err != nil {
		r.logger().Error("reg_fetch_contacts: lookup failed", "module", "registrar", "aor", aor, "err", err)
		return -1
	}
	now := time.Now().Unix()
	live := make([]usrloc.Binding, 0, len(bs))
	for i := range bs {
		if bs[i].Live(now) {
			live = append(live, bs[i])
		}
	}
	if len(live) == 0 {
		return -1
	}
	st.profiles[name] = &profile{aor: aor, table: table, bs: slices.Clip(live)}
	return 1
}

// freeContacts is reg_free_contacts(profile): 1.
func (r *Registrar) freeContacts(m *engine.Msg, name string) int {
	if st := r.state(m, false); st != nil {
		delete(st.profiles, name)
	}
	return 1
}

// getULC reads $ulc(profile=>attr). Kamailio's index form $(ulc(p=>attr)[i]) is written
// $ulc(p=>attr[i]) here (the pv layer takes no indexes); without an index the first contact is read.
func (r *Registrar) getULC(m *engine.Msg, arg string) engine.Value {
	name, attr, ok := strings.Cut(arg, "=>")
	if !ok {
		return engine.Value{}
	}
	idx := 0
	if i := strings.IndexByte(attr, '['); i >= 0 && strings.HasSuffix(attr, "]") {
		n, err := strconv.Atoi(attr[i+1 : len(attr)-1])
		if err != nil || n < 0 {
			return engine.Value{}
		}
		attr, idx = attr[:i], n
	}
	st := r.state(m, false)
	if st == nil {
		return engine.Value{}
	}
	p := st.profiles[strings.TrimSpace(name)]
	if p == nil {
		return engine.Value{}
	}
	switch strings.TrimSpace(attr) {
	case "aor":
		return engine.StrVal(p.aor)
	case "domain":
		return engine.StrVal(p.table)
	case "aorhash":
		h := fnv.New32a()
		h.Write([]byte(p.aor))
		return engine.IntVal(int64(h.Sum32()))
	case "count":
		return engine.IntVal(int64(len(p.bs)))
	}
	if idx >= len(p.bs) {
		return engine.Value{}
	}
	b := &p.bs[idx]
	str := func(s string) engine.Value {
		if s == "" {
			return engine.Value{}
		}
		return engine.StrVal(s)
	}
	switch strings.TrimSpace(attr) {
	case "addr":
		return engine.StrVal(b.Contact)
	case "path":
		return str(b.Path)
	case "received":
		return str(b.Received)
	case "expires":
		return engine.IntVal(b.Expires)
	case "callid":
		return engine.StrVal(b.CallID)
	case "q":
		return engine.IntVal(int64(b.Q))
	case "cseq":
		return engine.IntVal(int64(b.CSeq))
	case "flags":
		return engine.IntVal(int64(b.Flags))
	case "cflags":
		return engine.IntVal(int64(b.CFlags))
	case "user_agent":
		return str(b.UserAgent)
	case "socket":
		return str(b.Socket)
	case "modified":
		return engine.IntVal(b.Modified)
	case "methods":
		return engine.IntVal(int64(b.Methods))
	case "ruid":
		return engine.StrVal(ruid(b))
	case "regid":
		return engine.IntVal(int64(b.RegID))
	case "instance":
		return str(b.Instance)
	case "server_id":
		return engine.IntVal(0)
	}
	return engine.Value{} // conid and unknown attributes: $null
}
