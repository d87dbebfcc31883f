package tm

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// contactsAVP holds the contacts t_load_contacts sorted, as Kamailio's contacts_avp does; it lives with the
// transaction (failure routes see what is left). The NUL keeps it out of the script's $avp names.
const contactsAVP = "\x00tm_contacts"

// loadContacts is t_load_contacts: the R-URI and the appended branches, ordered by q (highest first; equal q
// keep their order), replace the branch set; t_next_contacts then takes one q group at a time. 1 when
// there was something to order, -1 when the R-URI has no branches (nothing to do, as Kamailio).
func loadContacts(m *engine.Msg) int {
	if !m.IsRequest() { // raw: no sipgo parse on the relay path
		return -1
	}
	if len(m.Branches) == 0 {
		return 1
	}
	all := make([]engine.Branch, 0, 1+len(m.Branches))
	all = append(all, engine.Branch{URI: m.RURI(), DstURI: m.DstURI, Q: m.RURIQ(), Flags: m.BFlags, Path: m.Path})
	all = append(all, m.Branches...)
	q := func(b engine.Branch) int {
		if b.Q < 0 {
			return 1000 // no q: as 1.0
		}
		return b.Q
	}
	slices.SortStableFunc(all, func(a, b engine.Branch) int { return q(b) - q(a) })
	vals := make([]engine.Value, len(all))
	for i, b := range all {
		vals[i] = engine.StrVal(strconv.Itoa(q(b)) + "\x00" + b.URI + "\x00" + b.DstURI + "\x00" + strconv.FormatUint(b.Flags, 10) + "\x00" + b.Path)
	}
	if m.AVPs == nil {
		m.AVPs = map[string][]engine.Value{}
	}
	m.AVPs[contactsAVP] = vals
	m.Branches = nil
	return 1
}

// nextContacts is t_next_contacts: the highest-q group left becomes the R-URI and the branches; -1 when
// none is left.
func nextContacts(m *engine.Msg) int {
	vals := m.AVPs[contactsAVP]
	if len(vals) == 0 {
		return -1
	}
	parse := func(v engine.Value) (int, engine.Branch) {
		p := strings.SplitN(v.S, "\x00", 5)
		for len(p) < 5 {
			p = append(p, "")
		}
		q, _ := strconv.Atoi(p[0])
		f, _ := strconv.ParseUint(p[3], 10, 64)
		return q, engine.Branch{URI: p[1], DstURI: p[2], Q: q, Flags: f, Path: p[4]}
	}
	q0, first := parse(vals[0])
	m.NewURI, m.DstURI, m.BFlags, m.Path = first.URI, first.DstURI, first.Flags, first.Path
	m.SetRURIQ(first.Q)
	m.Branches = m.Branches[:0]
	n := 1
	for ; n < len(vals); n++ {
		q, b := parse(vals[n])
		if q != q0 {
			break
		}
		m.Branches = append(m.Branches, b)
	}
	m.AVPs[contactsAVP] = vals[n:]
	return 1
}

// matchCode matches a status code against a t_check_status regular expression (anchored, as Kamailio's
// regexec on the whole code).
func matchCode(re, code string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		return false
	}
	return r.MatchString(code)
}
