package registrar

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/modules/usrloc"
)

// Save flags (Kamailio's save() flags).
const (
	flagMemOnly   = 0x01 // memory only: what every siplua backend write is anyway
	flagNoReply   = 0x02 // do not answer (reg_send_reply answers later)
	flagReplace   = 0x04 // one contact per AOR: the saved one replaces the others
	flagNoVary    = 0x08 // no expires_range (siplua has none)
	flagPrepReply = 0x10 // with 0x02: add the reply headers now
)

// rerr is Kamailio's rerrno: why save failed, with its status code and P-Registrar-Error text.
type rerr int

const (
	rFine rerr = iota
	rULGet
	rInvCSeq
	rAORParse
	rInvQ
	rParse
	rToMiss
	rCIDMiss
	rCSMiss
	rParseExp
	rParseCont
	rStarExp
	rStarCont
	rTooMany
	rContactLen
	rCallIDLen
	rParsePath
	rPathUnsup
	rLowExp
)

var rerrInfo = [...]struct {
	code int
	text string
}{
	rFine:       {200, "No problem"},
	rULGet:      {500, "usrloc_record_get failed"},
	rInvCSeq:    {400, "Invalid CSeq number"},
	rAORParse:   {400, "Error while parsing AOR"},
	rInvQ:       {400, "Invalid q param in contact"},
	rParse:      {400, "Message parse error"},
	rToMiss:     {400, "To header not found"},
	rCIDMiss:    {400, "Call-ID header not found"},
	rCSMiss:     {400, "CSeq header not found"},
	rParseExp:   {400, "Expires parse error"},
	rParseCont:  {400, "Contact parse error"},
	rStarExp:    {400, "* used in contact and expires is not zero"},
	rStarCont:   {400, "* used in contact and more than 1 contact"},
	rTooMany:    {503, "Too many registered contacts"},
	rContactLen: {400, "Contact/received too long"},
	rCallIDLen:  {400, "Callid too long"},
	rParsePath:  {400, "Path parse error"},
	rPathUnsup:  {420, "No support for found Path indicated"},
	rLowExp:     {423, "Interval too brief"},
}

func (e rerr) Error() string { return rerrInfo[e].text }

const (
	callIDMaxSize   = 255 // Kamailio's CALLID_MAX_SIZE
	receivedMaxSize = 255 // RECEIVED_MAX_SIZE
	uaMaxSize       = 255 // MAX_UA_SIZE
)

// pendingReply is the reply save prepared: status and headers (Contact list, Path, errors).
type pendingReply struct {
	code int
	hdrs string
}

// register is what save needs from the REGISTER, read once before the store is touched.
type register struct {
	aor      string
	list     []contact
	star     bool
	callID   string
	cseq     uint32
	ua       string
	path     string
	pathRcv  string
	received string // from received_avp
	methods  uint32 // from Allow
	hdrExp   int    // Expires header; -1 = none
	socket   string
	bflags   uint64
	qOver    int
}

func (r *Registrar) save(m *engine.Msg, table string, flags int) int {
	return r.saveURI(m, table, flags, "")
}

// saveURI is save(table, flags, uri): Kamailio's save with the AOR taken from uri instead of To. It
// returns 1 (contacts inserted), 2 (updated), 3 (deleted), 4 (only listed), -2 (too many contacts) or -1,
// and answers the REGISTER unless flags has 0x02, as Kamailio does (with the Contact list, and the status
// and P-Registrar-Error of the error).
func (r *Registrar) saveURI(m *engine.Msg, table string, flags int, uri string) int {
	r = r.live()
	if !m.IsRequest() {
		return -1
	}
	now := time.Now().Unix()
	var cur []usrloc.Binding
	ret, e := r.doSave(m, table, flags, uri, now, &cur)
	if e == rFine {
		r.rt.accepted.Add(1)
	} else {
		r.rt.rejected.Add(1)
	}
	// Kamailio forgets the Path vector when save returns, so a reply sent later by reg_send_reply has no
	// Path (nor the 420 of path_mode 2); one prepared now (0x10) or sent now has it
	withPath := flags&flagNoReply == 0 || flags&flagPrepReply != 0
	p := r.buildReply(m, e, cur, now, withPath)
	switch {
	case flags&flagNoReply == 0:
		m.ReplyHdrs = append(m.ReplyHdrs, p.hdrs...)
		if err := r.reply(m, p.code); err != nil {
			r.logger().Warn("save: reply not sent", "module", "registrar", "code", p.code, "err", err)
			return -1
		}
	default:
		r.state(m, true).pending = &p
		if flags&flagPrepReply != 0 {
			m.ReplyHdrs = append(m.ReplyHdrs, p.hdrs...)
			p.hdrs = ""
		}
	}
	if e == rFine || e == rPathUnsup {
		return ret
	}
	if e == rTooMany {
		return -2
	}
	return -1
}

// reply answers through the transaction when tm has one (Kamailio's sl freply), else statelessly.
func (r *Registrar) reply(m *engine.Msg, code int) error {
	reason := engine.Reason(code)
	if tr := m.E.TxReplier(); tr != nil {
		if ok, err := tr.TxReply(m, code, reason); ok {
			return err
		}
	}
	return m.SendReply(code, reason)
}

// sendPendingReply is reg_send_reply: the reply of a save with flag 0x02. -1 when there is none.
func (r *Registrar) sendPendingReply(m *engine.Msg) int {
	st := r.state(m, false)
	if st == nil || st.pending == nil || !m.IsRequest() {
		return -1
	}
	p := st.pending
	st.pending = nil
	m.ReplyHdrs = append(m.ReplyHdrs, p.hdrs...)
	if err := r.reply(m, p.code); err != nil {
		r.logger().Warn("reg_send_reply: reply not sent", "module", "registrar", "code", p.code, "err", err)
		return -1
	}
	return 1
}

// buildReply makes the status and headers of save's reply: the live bindings as one Contact header
// (Kamailio's build_contact), Path (and 420's Unsupported), Min-Expires for 423, P-Registrar-Error and
// Retry-After for errors.
func (r *Registrar) buildReply(m *engine.Msg, e rerr, cur []usrloc.Binding, now int64, withPath bool) pendingReply {
	var b strings.Builder
	n := 0
	for i := range cur {
		c := &cur[i]
		if !c.Live(now) {
			continue
		}
		if n == 0 {
			b.WriteString("Contact: ")
		} else {
			b.WriteString(", ")
		}
		n++
		b.WriteByte('<')
		b.WriteString(c.Contact)
		b.WriteByte('>')
		if q := formatQ(int(c.Q)); q != "" {
			b.WriteString(";q=")
			b.WriteString(q)
		}
		b.WriteString(";expires=")
		b.WriteString(strconv.FormatInt(c.Expires-now, 10))
		if r.ReceivedParam != "" && c.Received != "" {
			b.WriteString(";" + r.ReceivedParam + "=\"" + c.Received + "\"")
		}
		if c.Instance != "" {
			b.WriteString(";+sip.instance=\"" + c.Instance + "\"")
		}
		if c.RegID > 0 {
			b.WriteString(";reg-id=" + strconv.Itoa(int(c.RegID)))
		}
	}
	if n > 0 {
		b.WriteString("\r\n")
	}
	if e == rFine && withPath && r.UsePath && r.PathMode != PathModeOff {
		if path := pathVector(m); path != "" {
			_, supported := hasOptionTag(m, "supported", "path")
			switch {
			case supported:
				b.WriteString("Path: " + path + "\r\n")
			case r.PathMode == PathModeStrict:
				e = rPathUnsup
				b.WriteString("Unsupported: path\r\nPath: " + path + "\r\n")
			}
		}
	}
	if e == rLowExp {
		b.WriteString("Min-Expires: " + strconv.Itoa(r.MinExpires) + "\r\n")
	}
	code := rerrInfo[e].code
	if code != 200 {
		b.WriteString("P-Registrar-Error: " + rerrInfo[e].text + "\r\n")
		if code >= 500 && r.RetryAfter > 0 {
			b.WriteString("Retry-After: " + strconv.Itoa(r.RetryAfter) + "\r\n")
		}
	}
	return pendingReply{code: code, hdrs: b.String()}
}

// pathVector joins the Path header values with "," (Kamailio's build_path_vector).
func pathVector(m *engine.Msg) string {
	var path []byte
	n := 0
	for _, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, "path") {
			if n > 0 {
				path = append(path, ',')
			}
			path = append(path, trimBlanks(h.Value(m.Buf))...)
			n++
		}
	}
	return string(path)
}

// doSave reads the REGISTER and updates the store. cur receives the bindings the reply lists. It returns
// save's positive code and rFine, or the error.
func (r *Registrar) doSave(m *engine.Msg, table string, flags int, uri string, now int64, cur *[]usrloc.Binding) (int, rerr) {
	reg, e := r.readRegister(m, uri)
	if e != rFine {
		return -1, e
	}
	st, err := r.store()
	if err != nil {
		r.logger().Error("save: no location table", "module", "registrar", "err", err)
		return -1, rULGet
	}
	if reg.star {
		if _, err := st.Delete(table, reg.aor, ""); err != nil {
			r.logger().Error("save: removing bindings failed", "module", "registrar", "aor", reg.aor, "err", err)
			if bs, err := st.Lookup(table, reg.aor); err == nil {
				*cur = bs
			}
			return -1, rULGet
		}
		return 3, rFine
	}
	if len(reg.list) == 0 {
		bs, err := st.Lookup(table, reg.aor)
		if err != nil {
			r.logger().Error("save: lookup failed", "module", "registrar", "aor", reg.aor, "err", err)
			return -1, rULGet
		}
		*cur = bs
		return 4, rFine
	}
	ret := 0
	var fail rerr
	err = st.Update(table, reg.aor, func(old []usrloc.Binding) ([]usrloc.Binding, error) {
		*cur = old
		var next []usrloc.Binding
		var e rerr
		if len(old) == 0 {
			next, e = r.insertContacts(reg, now)
			ret = 1
		} else {
			next, ret, e = r.updateContacts(reg, old, flags&flagReplace != 0, now)
		}
		if e != rFine {
			fail = e
			return nil, e
		}
		*cur = next
		return next, nil
	})
	if err != nil {
		var re rerr
		if errors.As(err, &re) {
			return -1, fail
		}
		r.logger().Error("save: updating bindings failed", "module", "registrar", "aor", reg.aor, "err", err)
		*cur = nil
		if bs, err := st.Lookup(table, reg.aor); err == nil {
			*cur = bs
		}
		return -1, rULGet
	}
	if ret == 0 {
		ret = 1
	}
	return ret, rFine
}

// readRegister checks and reads what save needs (Kamailio's parse_message and check_contacts).
func (r *Registrar) readRegister(m *engine.Msg, uri string) (*register, rerr) {
	reg := &register{hdrExp: -1, bflags: m.BFlags, qOver: -2}
	x := scanHeaders(m)
	if uri == "" {
		if x.to < 0 {
			return nil, rToMiss
		}
		_, u, _, ok := rawsip.NameAddr(string(x.value(m, x.to)))
		if !ok || u == "" {
			return nil, rToMiss
		}
		uri = u
	}
	aor, ok := r.aor(uri)
	if !ok {
		return nil, rAORParse
	}
	reg.aor = aor
	if x.callID < 0 {
		return nil, rCIDMiss
	}
	cid := trimBlanks(x.value(m, x.callID))
	if len(cid) == 0 {
		return nil, rCIDMiss
	}
	if len(cid) > callIDMaxSize {
		return nil, rCallIDLen
	}
	reg.callID = string(cid)
	if x.cseq < 0 {
		return nil, rCSMiss
	}
	cs := trimBlanks(x.value(m, x.cseq))
	if sp := bytes.IndexAny(cs, " \t"); sp >= 0 {
		cs = cs[:sp]
	}
	n, ok := uint32Value(cs)
	if !ok {
		return nil, rInvCSeq
	}
	reg.cseq = n
	if x.expires >= 0 {
		e, ok := uint32Value(x.value(m, x.expires))
		if !ok {
			return nil, rParseExp
		}
		reg.hdrExp = int(min(e, 1<<31-1))
	}
	if !x.contact {
		return reg, rFine
	}
	list, star, values, ok := contacts(m)
	if !ok {
		return nil, rParseCont
	}
	if star {
		if reg.hdrExp != 0 {
			return nil, rStarExp
		}
		if values > 1 {
			return nil, rStarCont
		}
		reg.star = true
		return reg, rFine
	}
	for _, c := range list {
		if len(c.uri) > r.ContactMaxSize || len(c.received) > receivedMaxSize {
			return nil, rContactLen
		}
	}
	if len(list) == 0 {
		return reg, rFine
	}
	reg.list = list
	reg.ua = "n/a"
	if x.ua >= 0 {
		if ua := trimBlanks(x.value(m, x.ua)); len(ua) > 0 && len(ua) < uaMaxSize {
			reg.ua = string(ua)
		}
	}
	if r.UsePath && x.path {
		reg.path = pathVector(m)
		if reg.path != "" {
			_, rcv, ok := firstPathURI(reg.path)
			if !ok {
				return nil, rParsePath
			}
			if r.PathUseReceived {
				reg.pathRcv = rcv
			}
		}
	}
	if r.rcvAVP != "" {
		if v := m.AVPs[r.rcvAVP]; len(v) > 0 {
			if s := v[len(v)-1].String(); s != "" {
				if len(s) > receivedMaxSize {
					return nil, rContactLen
				}
				reg.received = s
			}
		}
	}
	reg.methods = allMethods
	if x.allow {
		reg.methods = 0
		for _, h := range m.Raw.Hdrs {
			if h.Is(m.Buf, "allow") {
				reg.methods = methodMask(reg.methods, string(h.Value(m.Buf)))
			}
		}
	}
	if m.Local != nil {
		reg.socket = r.socketName(m.Local)
	}
	if st := r.state(m, false); st != nil {
		reg.qOver = st.qOverride
	}
	return reg, rFine
}

// hdrIndex holds where the headers save reads are, found in one pass over the message (-1 = absent).
type hdrIndex struct {
	to, callID, cseq, expires, ua int
	contact, path, allow          bool
}

func (x *hdrIndex) value(m *engine.Msg, i int) []byte { return m.Raw.Hdrs[i].Value(m.Buf) }

// keepFirst records i as the index of a header unless an earlier one was found: save reads the first of each.
func keepFirst(idx *int, i int) {
	if *idx < 0 {
		*idx = i
	}
}

// scanHeaders finds the headers save needs in one pass (a REGISTER has a dozen; a lookup per header
// would walk them all each time).
func scanHeaders(m *engine.Msg) hdrIndex {
	x := hdrIndex{to: -1, callID: -1, cseq: -1, expires: -1, ua: -1}
	var low [16]byte
	for i, h := range m.Raw.Hdrs {
		n := h.Name(m.Buf)
		var name []byte
		switch {
		case len(n) == 1:
			name = []byte(rawsip.Compact(n[0]))
		case len(n) <= len(low):
			for j, c := range n {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				low[j] = c
			}
			name = low[:len(n)]
		default:
			continue
		}
		switch string(name) {
		case "to":
			keepFirst(&x.to, i)
		case "call-id":
			keepFirst(&x.callID, i)
		case "cseq":
			keepFirst(&x.cseq, i)
		case "expires":
			keepFirst(&x.expires, i)
		case "user-agent":
			keepFirst(&x.ua, i)
		case "contact":
			x.contact = true
		case "path":
			x.path = true
		case "allow":
			x.allow = true
		}
	}
	return x
}

// expires is Kamailio's calc_contact_expires: the contact's expires parameter (default_expires when it
// is not a number), else the Expires header, else default_expires; a non-zero value below min_expires is
// raised to it or refused (min_expires_mode 1), one above max_expires is capped. It returns seconds.
func (r *Registrar) expires(reg *register, c *contact) (int, rerr) {
	var e int
	switch {
	case c.hasExp && c.expires != "":
		v, err := strconv.ParseUint(c.expires, 10, 32)
		if err != nil {
			e = r.DefaultExpires
		} else {
			e = int(min(v, 1<<31-1))
		}
	case reg.hdrExp >= 0:
		e = reg.hdrExp
	default:
		e = r.DefaultExpires
	}
	if e == 0 {
		return 0, rFine
	}
	if r.MinExpires > 0 && e < r.MinExpires {
		if r.MinExpiresMode == 1 {
			return 0, rLowExp
		}
		e = r.MinExpires
	}
	if r.MaxExpires > 0 && e > r.MaxExpires {
		e = r.MaxExpires
	}
	return e, rFine
}

// binding builds the stored binding of contact c.
func (r *Registrar) binding(reg *register, c *contact, exp int, now int64) (usrloc.Binding, rerr) {
	q := r.DefaultQ
	switch {
	case reg.qOver >= 0:
		q = reg.qOver
	case c.hasQ && c.q != "":
		v, ok := parseQ(c.q)
		if !ok {
			return usrloc.Binding{}, rInvQ
		}
		q = v
	}
	b := usrloc.Binding{AOR: reg.aor, Contact: c.uri, Path: reg.path, Socket: reg.socket, CallID: reg.callID,
		UserAgent: reg.ua, Instance: c.instance, Expires: now + int64(exp), Modified: now, CSeq: reg.cseq,
		Q: int16(q), CFlags: reg.bflags, Methods: reg.methods}
	if c.hasMeth {
		b.Methods = methodMask(0, c.methods)
	}
	switch {
	case reg.pathRcv != "":
		b.Received = reg.pathRcv
		if ul := r.rt.ul; ul != nil && ul.NatBflag >= 0 {
			b.CFlags |= 1 << uint(ul.NatBflag)
		}
	case c.received != "":
		b.Received = c.received
	default:
		b.Received = reg.received
	}
	if c.instance != "" && c.regID != "" {
		if v, err := strconv.ParseUint(c.regID, 10, 31); err == nil {
			b.RegID = int32(v)
		}
	}
	return b, rFine
}

// find returns the index of the binding that c updates: the same +sip.instance (and reg-id) when c has
// one, else the same contact URI (usrloc's contact-only matching); -1 when none.
func find(bs []usrloc.Binding, c *contact) int {
	for i := range bs {
		if c.instance != "" && bs[i].Instance == c.instance {
			if c.regID == "" || strconv.Itoa(int(bs[i].RegID)) == c.regID {
				return i
			}
		}
	}
	for i := range bs {
		if bs[i].Contact == c.uri {
			return i
		}
	}
	return -1
}

// cseqCheck is usrloc's Call-ID/CSeq rule for an existing binding: same Call-ID with a lower CSeq is an
// error, with the same CSeq a retransmission (skip) within cseq_delay of the last update and an error after.
func (r *Registrar) cseqCheck(b *usrloc.Binding, reg *register, now int64) (skip bool, e rerr) {
	if b.CallID != reg.callID {
		return false, rFine
	}
	if reg.cseq < b.CSeq {
		return false, rInvCSeq
	}
	if reg.cseq == b.CSeq {
		if b.Modified+int64(r.CSeqDelay) > now {
			return true, rFine
		}
		return false, rInvCSeq
	}
	return false, rFine
}

// insertAt puts b into the q-ordered list (highest q first; a new binding after those with the same q),
// as usrloc keeps its contacts.
func insertAt(bs []usrloc.Binding, b usrloc.Binding) []usrloc.Binding {
	i := 0
	for i < len(bs) && bs[i].Q >= b.Q {
		i++
	}
	return slices.Insert(bs, i, b)
}

// insertContacts handles a REGISTER for an AOR with no bindings (Kamailio's insert_contacts).
func (r *Registrar) insertContacts(reg *register, now int64) ([]usrloc.Binding, rerr) {
	var out []usrloc.Binding
	for i := range reg.list {
		c := &reg.list[i]
		exp, e := r.expires(reg, c)
		if e != rFine {
			return nil, e
		}
		if exp == 0 {
			continue
		}
		if r.MaxContacts > 0 && len(out) >= r.MaxContacts {
			return nil, rTooMany
		}
		b, e := r.binding(reg, c, exp, now)
		if e != rFine {
			return nil, e
		}
		if find(out, c) >= 0 { // the same contact twice in one REGISTER: the first one stays (as Kamailio)
			continue
		}
		out = insertAt(out, b)
	}
	return out, rFine
}

// updateContacts handles a REGISTER for an AOR with bindings (Kamailio's update_contacts): insert new
// contacts, refresh known ones, remove those with expires 0; with replace (flag 0x04) each contact saved
// removes the others, so the last one stays (what Kamailio 5.6 does with several contacts). It returns the new list and 1 (inserted), 2 (updated), 3 (deleted) for the last change,
// 0 for none.
func (r *Registrar) updateContacts(reg *register, old []usrloc.Binding, replace bool, now int64) ([]usrloc.Binding, int, rerr) {
	if !replace && r.MaxContacts > 0 {
		n := len(old)
		for i := range reg.list {
			c := &reg.list[i]
			exp, _ := r.expires(reg, c)
			j := find(old, c)
			if j < 0 {
				if exp != 0 {
					n++
				}
				continue
			}
			skip, e := r.cseqCheck(&old[j], reg, now)
			if e != rFine {
				return nil, 0, e
			}
			if !skip && exp == 0 {
				n--
			}
		}
		if n > r.MaxContacts {
			return nil, 0, rTooMany
		}
	}
	out := slices.Clone(old)
	rc := 0
	var touched []string // contacts this REGISTER already saved: a repeat updates them again (last wins)
	for i := range reg.list {
		c := &reg.list[i]
		exp, e := r.expires(reg, c)
		if e != rFine {
			return nil, 0, e
		}
		j := find(out, c)
		if j >= 0 && !slices.Contains(touched, c.uri) {
			skip, e := r.cseqCheck(&out[j], reg, now)
			if e != rFine {
				return nil, 0, e
			}
			if skip {
				continue
			}
		}
		touched = append(touched, c.uri)
		switch {
		case j < 0 && exp == 0:
			continue
		case j < 0:
			b, e := r.binding(reg, c, exp, now)
			if e != rFine {
				return nil, 0, e
			}
			if replace {
				out = out[:0]
			}
			out = insertAt(out, b)
			rc = 1
		case exp == 0:
			out = slices.Delete(out, j, j+1)
			rc = 3
		default:
			b, e := r.binding(reg, c, exp, now)
			if e != rFine {
				return nil, 0, e
			}
			b.Flags = out[j].Flags
			if replace {
				out = append(out[:0], b)
			} else {
				out[j] = b // in place even when its q changed: Kamailio 5.6's usrloc does not move it
			}
			rc = 2
		}
	}
	return out, rc, rFine
}
