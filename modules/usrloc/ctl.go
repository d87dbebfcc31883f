package usrloc

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
)

// The ul.* control commands follow Kamailio's usrloc RPC: the same names, argument order (table first)
// and result shape (Domain → AoRs → Info → Contacts → Contact), so that scripts parsing kamcmd output
// need few changes. Shorter forms without the table name use "location".

// Values Kamailio's ul.add gives the contacts it creates.
const (
	rpcCallID    = "dfjrewr12386fd6-343@kamailio.mi"
	rpcUserAgent = "SIP Router MI Server"
	rpcCSeq      = 1
)

// RPC offers ul.dump, ul.lookup, ul.rm, ul.rm_contact and ul.add.
func (u *Usrloc) RPC() []engine.Command {
	return []engine.Command{
		{Name: "ul.dump", Help: "ul.dump [brief] [FILTER]: the location table grouped by AOR; FILTER keeps the AORs containing it; brief lists AORs only", Fn: u.rpcDump},
		{Name: "ul.lookup", Help: "ul.lookup [TABLE] AOR: the live contacts of one AOR (TABLE default location)", Fn: u.rpcLookup},
		{Name: "ul.rm", Help: "ul.rm [TABLE] AOR [CONTACT]: remove an AOR with its contacts, or one contact of it", Fn: u.rpcRm},
		{Name: "ul.rm_contact", Help: "ul.rm_contact TABLE AOR CONTACT: remove one contact of an AOR", Fn: u.rpcRmContact},
		{Name: "ul.add", Help: "ul.add TABLE AOR CONTACT EXPIRES Q PATH FLAGS CFLAGS METHODS (Kamailio's order; PATH 0 = none), or ul.add AOR CONTACT [EXPIRES [Q]]", Fn: u.rpcAdd},
	}
}

// RPCContact is one contact in ul.dump and ul.lookup, with Kamailio's field names.
type RPCContact struct {
	Address   string  `json:"Address"`
	Expires   any     `json:"Expires"` // seconds left, or "expired"
	Q         float64 `json:"Q"`       // -1 = none given
	CallID    string  `json:"Call-ID"`
	CSeq      uint32  `json:"CSeq"`
	UserAgent string  `json:"User-Agent"`
	Received  string  `json:"Received"`
	Path      string  `json:"Path"`
	Flags     uint32  `json:"Flags"`
	CFlags    uint64  `json:"CFlags"`
	NAT       bool    `json:"NAT"` // CFlags has nat_bflag
	Socket    string  `json:"Socket"`
	Methods   uint32  `json:"Methods"`
	Instance  string  `json:"Instance"`
	RegID     int32   `json:"Reg-Id"`
	Modified  int64   `json:"Last-Modified"`
}

// RPCAoR is one AOR with its contacts.
type RPCAoR struct {
	AoR      string `json:"AoR"`
	Contacts []struct {
		Contact RPCContact `json:"Contact"`
	} `json:"Contacts"`
}

// RPCDomain is one table in ul.dump.
type RPCDomain struct {
	Domain string `json:"Domain"`
	AoRs   []any  `json:"AoRs"` // {"Info": RPCAoR}, or {"AoR": name} when brief
	Stats  struct {
		Records  int `json:"Records"`
		Contacts int `json:"Contacts"`
	} `json:"Stats"`
}

const notSet = "[not set]" // Kamailio's value for an empty string field

func orNotSet(s string) string {
	if s == "" {
		return notSet
	}
	return s
}

func (u *Usrloc) rpcContact(b *Binding, now int64) RPCContact {
	c := RPCContact{Address: b.Contact, CallID: b.CallID, CSeq: b.CSeq, UserAgent: orNotSet(b.UserAgent),
		Received: orNotSet(b.Received), Path: orNotSet(b.Path), Flags: b.Flags, CFlags: b.CFlags,
		NAT: u.NATed(b), Socket: orNotSet(b.Socket), Methods: b.Methods, Instance: orNotSet(b.Instance),
		RegID: b.RegID, Modified: b.Modified, Q: -1}
	if b.Methods == 0 {
		c.Methods = math.MaxUint32 // Kamailio shows "every method" as all bits set
	}
	if b.Q >= 0 {
		c.Q = float64(b.Q) / 1000
	}
	if left := b.Expires - now; left > 0 {
		c.Expires = left
	} else {
		c.Expires = "expired"
	}
	return c
}

func (u *Usrloc) started() (Store, error) {
	if u.store == nil {
		return nil, errors.New("usrloc is not started")
	}
	return u.store, nil
}

// rpcDump: ul.dump [brief] [FILTER].
func (u *Usrloc) rpcDump(args []string) (any, error) {
	st, err := u.started()
	if err != nil {
		return nil, err
	}
	brief := false
	if len(args) > 0 && args[0] == "brief" {
		brief, args = true, args[1:]
	}
	if len(args) > 1 {
		return nil, errors.New("ul.dump takes [brief] [FILTER]")
	}
	filter := ""
	if len(args) == 1 {
		filter = args[0]
	}
	now := time.Now().Unix()
	tables := map[string]map[string]*RPCAoR{}
	err = st.Range("", func(table string, b *Binding) bool {
		if filter != "" && !strings.Contains(b.AOR, filter) {
			return true
		}
		t := tables[table]
		if t == nil {
			t = map[string]*RPCAoR{}
			tables[table] = t
		}
		a := t[b.AOR]
		if a == nil {
			a = &RPCAoR{AoR: b.AOR}
			t[b.AOR] = a
		}
		if !brief {
			a.Contacts = append(a.Contacts, struct {
				Contact RPCContact `json:"Contact"`
			}{u.rpcContact(b, now)})
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("ul.dump: %w", err)
	}
	names := make([]string, 0, len(tables)+1)
	for n := range tables {
		names = append(names, n)
	}
	if tables[DefaultTable] == nil {
		names = append(names, DefaultTable) // Kamailio lists its table even when empty
	}
	sort.Strings(names)
	out := make([]RPCDomain, 0, len(names))
	for _, n := range names {
		d := RPCDomain{Domain: n, AoRs: []any{}}
		aors := make([]string, 0, len(tables[n]))
		for a := range tables[n] {
			aors = append(aors, a)
		}
		sort.Strings(aors)
		for _, a := range aors {
			r := tables[n][a]
			if brief {
				d.AoRs = append(d.AoRs, map[string]string{"AoR": a})
			} else {
				d.AoRs = append(d.AoRs, map[string]*RPCAoR{"Info": r})
			}
			d.Stats.Contacts += len(r.Contacts)
		}
		d.Stats.Records = len(aors)
		out = append(out, d)
	}
	return map[string]any{"Domains": out}, nil
}

// rpcLookup: ul.lookup [TABLE] AOR, Kamailio's errors when nothing is found.
func (u *Usrloc) rpcLookup(args []string) (any, error) {
	st, err := u.started()
	if err != nil {
		return nil, err
	}
	var table, aor string
	switch len(args) {
	case 1:
		table, aor = DefaultTable, args[0]
	case 2:
		table, aor = args[0], args[1]
	default:
		return nil, errors.New("Not enough parameters (table and AOR to lookup)")
	}
	if aor == "" {
		return nil, errors.New("ul.lookup: empty AOR")
	}
	bs, err := st.Lookup(table, aor)
	if err != nil {
		return nil, fmt.Errorf("ul.lookup %s %s: %w", table, aor, err)
	}
	if len(bs) == 0 {
		return nil, errors.New("AOR not found in location table")
	}
	now := time.Now().Unix()
	r := RPCAoR{AoR: aor}
	for i := range bs {
		r.Contacts = append(r.Contacts, struct {
			Contact RPCContact `json:"Contact"`
		}{u.rpcContact(&bs[i], now)})
	}
	return r, nil
}

// isURI tells a contact ("sip:…", "sips:…", "tel:…") from a table or an AOR (user@domain has no scheme).
func isURI(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel", "urn":
		return true
	}
	return false
}

// rpcRm: ul.rm TABLE AOR (Kamailio), ul.rm AOR, ul.rm AOR CONTACT, ul.rm TABLE AOR CONTACT. With two
// arguments the second is a contact when it is a URI (AORs are stored without a scheme).
func (u *Usrloc) rpcRm(args []string) (any, error) {
	switch {
	case len(args) == 1:
		return u.rm(DefaultTable, args[0], "")
	case len(args) == 2 && isURI(args[1]):
		return u.rm(DefaultTable, args[0], args[1])
	case len(args) == 2:
		return u.rm(args[0], args[1], "")
	case len(args) == 3:
		return u.rm(args[0], args[1], args[2])
	}
	return nil, errors.New("Not enough parameters (table and AOR to lookup)")
}

// rpcRmContact: ul.rm_contact TABLE AOR CONTACT.
func (u *Usrloc) rpcRmContact(args []string) (any, error) {
	if len(args) != 3 {
		return nil, errors.New("Not enough parameters (table, AOR and contact)")
	}
	return u.rm(args[0], args[1], args[2])
}

// rm removes an AOR (contact "") or one contact. Removing an unknown AOR is no error (as Kamailio's
// ul.rm); an unknown contact is ("Contact not found").
func (u *Usrloc) rm(table, aor, contact string) (any, error) {
	st, err := u.started()
	if err != nil {
		return nil, err
	}
	if aor == "" {
		return nil, errors.New("ul.rm: empty AOR")
	}
	if contact != "" {
		if bs, err := st.Lookup(table, aor); err != nil {
			return nil, fmt.Errorf("ul.rm %s %s: %w", table, aor, err)
		} else if len(bs) == 0 {
			return nil, errors.New("AOR not found")
		}
	}
	ok, err := st.Delete(table, aor, contact)
	if err != nil {
		return nil, fmt.Errorf("ul.rm %s %s: %w", table, aor, err)
	}
	if contact != "" && !ok {
		return nil, errors.New("Contact not found")
	}
	return map[string]any{"AoR": aor, "Removed": ok}, nil
}

// rpcAdd: ul.add TABLE AOR CONTACT EXPIRES Q PATH FLAGS CFLAGS METHODS (Kamailio's nine arguments; PATH "0"
// = none), or the short ul.add AOR CONTACT [EXPIRES [Q]] (location, 3600 s, no q). A contact already bound
// to the AOR is updated, as Kamailio does.
func (u *Usrloc) rpcAdd(args []string) (any, error) {
	st, err := u.started()
	if err != nil {
		return nil, err
	}
	var table, aor, contact, path string
	expires, q := "3600", "-1"
	var flags, cflags, methods uint64
	switch n := len(args); {
	case n == 9:
		table, aor, contact, expires, q, path = args[0], args[1], args[2], args[3], args[4], args[5]
		if path == "0" {
			path = ""
		}
		for i, p := range []*uint64{&flags, &cflags, &methods} {
			bits := []int{32, 64, 32}[i]
			v, err := strconv.ParseUint(args[6+i], 0, bits)
			if err != nil {
				return nil, fmt.Errorf("ul.add: %s: expected an unsigned %d-bit number, got %q", []string{"flags", "cflags", "methods"}[i], bits, args[6+i])
			}
			*p = v
		}
	case n >= 2 && n <= 4:
		table, aor, contact = DefaultTable, args[0], args[1]
		if n >= 3 {
			expires = args[2]
		}
		if n == 4 {
			q = args[3]
		}
	default:
		return nil, errors.New("Not enough parameters or wrong format: ul.add TABLE AOR CONTACT EXPIRES Q PATH FLAGS CFLAGS METHODS, or ul.add AOR CONTACT [EXPIRES [Q]]")
	}
	if aor == "" || !isURI(contact) {
		return nil, fmt.Errorf("ul.add: expected an AOR and a contact URI, got %q and %q", aor, contact)
	}
	exp, err := strconv.ParseInt(expires, 10, 32)
	if err != nil || exp < 0 {
		return nil, fmt.Errorf("ul.add: expires: expected seconds, got %q", expires)
	}
	if exp == 0 {
		return nil, errors.New("ul.add: expires: 0 (a permanent contact) is not supported, give seconds")
	}
	qf, err := strconv.ParseFloat(q, 64)
	if err != nil || (qf != -1 && (qf < 0 || qf > 1)) {
		return nil, fmt.Errorf("ul.add: q: expected 0..1 or -1 (none), got %q", q)
	}
	qv := int16(-1)
	if qf >= 0 {
		qv = int16(math.Round(qf * 1000))
	}
	now := time.Now().Unix()
	nb := Binding{AOR: aor, Contact: contact, Path: path, CallID: rpcCallID, UserAgent: rpcUserAgent, CSeq: rpcCSeq,
		Expires: now + exp, Modified: now, Q: qv, Flags: uint32(flags), CFlags: cflags, Methods: uint32(methods)}
	err = st.Update(table, aor, func(cur []Binding) ([]Binding, error) {
		for i := range cur {
			if cur[i].Contact == contact {
				cur[i] = nb
				return cur, nil
			}
		}
		return append(cur, nb), nil
	})
	if err != nil {
		return nil, fmt.Errorf("ul.add %s %s: %w", table, aor, err)
	}
	return nil, nil
}
