package registrar

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	c := getSaveCtx(r, now, flags)
	defer c.release()
	ret, e := c.doSave(m, table, uri)
	if e == rFine {
		r.rt.accepted.Add(1)
	} else {
		r.rt.rejected.Add(1)
	}
	// Kamailio forgets the Path vector when save returns, so a reply sent later by reg_send_reply has no
	// Path (nor the 420 of path_mode 2); one prepared now (0x10) or sent now has it
	withPath := flags&flagNoReply == 0 || flags&flagPrepReply != 0
	switch {
	case flags&flagNoReply == 0:
		// The headers go straight into the message's reply headers (a buffer the engine reuses).
		var code int
		m.ReplyHdrs, code = r.appendReply(m.ReplyHdrs, m, e, c.cur, now, withPath)
		if err := r.reply(m, code); err != nil {
			r.logger().Warn("save: reply not sent", "module", "registrar", "code", code, "err", err)
			return -1
		}
	default:
		hdrs, code := r.appendReply(nil, m, e, c.cur, now, withPath)
		p := &pendingReply{code: code, hdrs: string(hdrs)}
		r.state(m, true).pending = p
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

// appendReply appends the headers of save's reply to dst and returns its status: the live bindings as one
// Contact header (Kamailio's build_contact), Path (and 420's Unsupported), Min-Expires for 423,
// P-Registrar-Error and Retry-After for errors.
func (r *Registrar) appendReply(b []byte, m *engine.Msg, e rerr, cur []usrloc.Binding, now int64, withPath bool) ([]byte, int) {
	n := 0
	for i := range cur {
		c := &cur[i]
		if !c.Live(now) {
			continue
		}
		if n == 0 {
			b = append(b, "Contact: "...)
		} else {
			b = append(b, ", "...)
		}
		n++
		b = append(b, '<')
		b = append(b, c.Contact...)
		b = append(b, '>')
		if c.Q >= 0 {
			b = append(b, ";q="...)
			b = appendQ(b, int(c.Q))
		}
		b = append(b, ";expires="...)
		b = strconv.AppendInt(b, c.Expires-now, 10)
		if r.ReceivedParam != "" && c.Received != "" {
			b = append(b, ';')
			b = append(b, r.ReceivedParam...)
			b = append(b, "=\""...)
			b = append(b, c.Received...)
			b = append(b, '"')
		}
		if c.Instance != "" {
			b = append(b, ";+sip.instance=\""...)
			b = append(b, c.Instance...)
			b = append(b, '"')
		}
		if c.RegID > 0 {
			b = append(b, ";reg-id="...)
			b = strconv.AppendInt(b, int64(c.RegID), 10)
		}
	}
	if n > 0 {
		b = append(b, "\r\n"...)
	}
	if e == rFine && withPath && r.UsePath && r.PathMode != PathModeOff {
		if path := pathVector(m); path != "" {
			_, supported := hasOptionTag(m, "supported", "path")
			switch {
			case supported:
				b = append(b, "Path: "+path+"\r\n"...)
			case r.PathMode == PathModeStrict:
				e = rPathUnsup
				b = append(b, "Unsupported: path\r\nPath: "+path+"\r\n"...)
			}
		}
	}
	if e == rLowExp {
		b = append(b, "Min-Expires: "...)
		b = strconv.AppendInt(b, int64(r.MinExpires), 10)
		b = append(b, "\r\n"...)
	}
	code := rerrInfo[e].code
	if code != 200 {
		b = append(b, "P-Registrar-Error: "+rerrInfo[e].text+"\r\n"...)
		if code >= 500 && r.RetryAfter > 0 {
			b = append(b, "Retry-After: "...)
			b = strconv.AppendInt(b, int64(r.RetryAfter), 10)
			b = append(b, "\r\n"...)
		}
	}
	return b, code
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

// saveCtx is the working state of one save: the REGISTER as read, the bindings the reply lists and the
// store's update callback, bound once. Contexts are pooled, so that a refresh allocates only what the
// store keeps (the callback, its captured variables and the contact list were an allocation each).
type saveCtx struct {
	r      *Registrar
	now    int64
	flags  int
	reg    register
	cur    []usrloc.Binding // the bindings the reply lists
	ret    int
	fail   rerr
	update func([]usrloc.Binding) ([]usrloc.Binding, error) // c.apply, bound once per context
}

var saveCtxPool = sync.Pool{New: func() any {
	c := &saveCtx{}
	c.update = c.apply
	return c
}}

func getSaveCtx(r *Registrar, now int64, flags int) *saveCtx {
	c := saveCtxPool.Get().(*saveCtx)
	c.r, c.now, c.flags = r, now, flags
	return c
}

// release returns c to the pool without what it points to: the store's bindings, the strings of the
// REGISTER and the parameter set (a reload must not be kept alive by a pooled context).
func (c *saveCtx) release() {
	list := c.reg.list[:0]
	clear(list[:cap(list)])
	if cap(list) > 8 { // a REGISTER with many contacts: do not keep its list around
		list = nil
	}
	c.reg = register{list: list}
	c.r, c.cur, c.ret, c.fail = nil, nil, 0, rFine
	saveCtxPool.Put(c)
}

// apply is the store update of save: the bindings of the AOR given its live ones (Store.Update's fn).
func (c *saveCtx) apply(old []usrloc.Binding) ([]usrloc.Binding, error) {
	c.cur = old
	var next []usrloc.Binding
	var e rerr
	if len(old) == 0 {
		next, e = c.r.insertContacts(&c.reg, c.now)
		c.ret = 1
	} else {
		next, c.ret, e = c.r.updateContacts(&c.reg, old, c.flags&flagReplace != 0, c.now)
	}
	if e != rFine {
		c.fail = e
		return nil, e
	}
	c.cur = next
	return next, nil
}

// doSave reads the REGISTER and updates the store. c.cur receives the bindings the reply lists. It returns
// save's positive code and rFine, or the error.
func (c *saveCtx) doSave(m *engine.Msg, table string, uri string) (int, rerr) {
	r, reg := c.r, &c.reg
	if e := r.readRegister(m, uri, reg); e != rFine {
		return -1, e
	}
	st, err := r.store()
	if err != nil {
		r.logger().Error("save: no location table", "module", "registrar", "err", err)
		return -1, rULGet
	}
	if _, copies := st.(usrloc.CopiesStrings); !copies {
		reg.own()
	}
	if reg.star {
		if _, err := st.Delete(table, reg.aor, ""); err != nil {
			r.logger().Error("save: removing bindings failed", "module", "registrar", "aor", reg.aor, "err", err)
			if bs, err := st.Lookup(table, reg.aor); err == nil {
				c.cur = bs
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
		c.cur = bs
		return 4, rFine
	}
	c.ret, c.fail = 0, rFine
	if err := st.Update(table, reg.aor, c.update); err != nil {
		var re rerr
		if errors.As(err, &re) {
			return -1, c.fail
		}
		r.logger().Error("save: updating bindings failed", "module", "registrar", "aor", reg.aor, "err", err)
		c.cur = nil
		if bs, err := st.Lookup(table, reg.aor); err == nil {
			c.cur = bs
		}
		return -1, rULGet
	}
	if c.ret == 0 {
		c.ret = 1
	}
	return c.ret, rFine
}

// own copies the strings of reg that the store may keep (AOR, Call-ID, User-Agent, the contacts' URI,
// received and +sip.instance), views of the received message until then, into one new allocation. A
// store that copies what it keeps (usrloc.CopiesStrings: the memory backend) does not need it.
func (reg *register) own() {
	n := len(reg.aor) + len(reg.callID) + len(reg.ua)
	for i := range reg.list {
		c := &reg.list[i]
		n += len(c.uri) + len(c.received) + len(c.instance)
	}
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteString(reg.aor)
	sb.WriteString(reg.callID)
	sb.WriteString(reg.ua)
	for i := range reg.list {
		c := &reg.list[i]
		sb.WriteString(c.uri)
		sb.WriteString(c.received)
		sb.WriteString(c.instance)
	}
	all := sb.String()
	cut := func(f *string) {
		*f, all = all[:len(*f)], all[len(*f):]
	}
	cut(&reg.aor)
	cut(&reg.callID)
	cut(&reg.ua)
	for i := range reg.list {
		c := &reg.list[i]
		cut(&c.uri)
		cut(&c.received)
		cut(&c.instance)
	}
}

// readRegister checks and reads into reg what save needs (Kamailio's parse_message and check_contacts).
// Its strings are views of the message (no copy): doSave copies them (own) for a store that keeps them.
func (r *Registrar) readRegister(m *engine.Msg, uri string, reg *register) rerr {
	*reg = register{hdrExp: -1, bflags: m.BFlags, qOver: -2, list: reg.list[:0]}
	x := scanHeaders(m)
	if uri == "" {
		if x.to < 0 {
			return rToMiss
		}
		_, u, _, ok := rawsip.NameAddr(rawsip.View(x.value(m, x.to)))
		if !ok || u == "" {
			return rToMiss
		}
		uri = u
	}
	aor, ok := r.aor(uri)
	if !ok {
		return rAORParse
	}
	reg.aor = aor
	if x.callID < 0 {
		return rCIDMiss
	}
	cid := trimBlanks(x.value(m, x.callID))
	if len(cid) == 0 {
		return rCIDMiss
	}
	if len(cid) > callIDMaxSize {
		return rCallIDLen
	}
	reg.callID = rawsip.View(cid)
	if x.cseq < 0 {
		return rCSMiss
	}
	cs := trimBlanks(x.value(m, x.cseq))
	if sp := bytes.IndexAny(cs, " \t"); sp >= 0 {
		cs = cs[:sp]
	}
	n, ok := uint32Value(cs)
	if !ok {
		return rInvCSeq
	}
	reg.cseq = n
	if x.expires >= 0 {
		e, ok := uint32Value(x.value(m, x.expires))
		if !ok {
			return rParseExp
		}
		reg.hdrExp = int(min(e, 1<<31-1))
	}
	if x.contact < 0 {
		return rFine
	}
	list, star, values, ok := contacts(m, x.contact, reg.list)
	reg.list = list[:0] // the backing array is reused by the next save, whatever happens
	if !ok {
		return rParseCont
	}
	if star {
		if reg.hdrExp != 0 {
			return rStarExp
		}
		if values > 1 {
			return rStarCont
		}
		reg.star = true
		return rFine
	}
	for _, c := range list {
		if len(c.uri) > r.ContactMaxSize || len(c.received) > receivedMaxSize {
			return rContactLen
		}
	}
	if len(list) == 0 {
		return rFine
	}
	reg.list = list
	reg.ua = "n/a"
	if x.ua >= 0 {
		if ua := trimBlanks(x.value(m, x.ua)); len(ua) > 0 && len(ua) < uaMaxSize {
			reg.ua = rawsip.View(ua)
		}
	}
	if r.UsePath && x.path {
		reg.path = pathVector(m)
		if reg.path != "" {
			_, rcv, ok := firstPathURI(reg.path)
			if !ok {
				return rParsePath
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
					return rContactLen
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
				reg.methods = methodMask(reg.methods, rawsip.View(h.Value(m.Buf)))
			}
		}
	}
	if m.Local != nil {
		reg.socket = r.socketName(m.Local)
	}
	if st := r.state(m, false); st != nil {
		reg.qOver = st.qOverride
	}
	return rFine
}

// hdrIndex holds where the headers save reads are, found in one pass over the message (-1 = absent).
type hdrIndex struct {
	to, callID, cseq, expires, ua, contact int
	path, allow                            bool
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
	x := hdrIndex{to: -1, callID: -1, cseq: -1, expires: -1, ua: -1, contact: -1}
	var low [16]byte
	for i, h := range m.Raw.Hdrs {
		n := h.Name(m.Buf)
		var name []byte
		switch {
		case len(n) == 1:
			name = []byte(rawsip.Compact(n[0]))
		case len(n) != 2 && len(n) != 4 && len(n) != 5 && len(n) != 7 && len(n) != 10:
			continue // not one of the names below (Via, From, Max-Forwards, Content-Length …)
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
			keepFirst(&x.contact, i)
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
	// old is the store's copy for this update (Store.Update's fn owns it), but on an error it is also what the
	// error reply lists: with several contacts an error may come after an earlier one changed the list, so
	// that list works on a copy. With one contact every error comes before the first change, so the common
	// refresh updates old in place, and the store can keep that slice (no copy at all).
	out := old
	if len(reg.list) > 1 {
		out = slices.Clone(old)
	}
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
