package nathelper

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// contact is one Contact value located in the received buffer.
type contact struct {
	start, end       int // the whole value (name-addr and header parameters), trimmed
	uriStart, uriEnd int // the URI
	bracket          bool
	uri              rawsip.URI
	hpEnd            int // end of host[:port] in the buffer
}

func (c contact) port() int {
	return portOr5060(c.uri.PortNum())
}

// proto is the transport of the contact URI: its transport parameter, else UDP (sips: TCP).
func (c contact) proto() string {
	if t, _, _, ok := rawsip.Param(c.uri.Params, "transport"); ok {
		return strings.ToLower(t)
	}
	if strings.EqualFold(c.uri.Scheme, "sips") {
		return "tls"
	}
	return "udp"
}

// contacts lists the Contact values of the message in order ("*" is skipped); first only when first.
func contacts(m *engine.Msg, first bool) []contact {
	var out []contact
	for _, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, "contact") {
			continue
		}
		off := int(h.VStart)
		for off < int(h.VEnd) {
			k := rawsip.FirstValueEnd(m.Buf[off:h.VEnd])
			if c, ok := parseContact(m.Buf, off, off+k); ok {
				out = append(out, c)
				if first {
					return out
				}
			}
			off += k + 1
		}
	}
	return out
}

func parseContact(buf []byte, s, e int) (contact, bool) {
	for s < e && isWS(buf[s]) {
		s++
	}
	for e > s && isWS(buf[e-1]) {
		e--
	}
	c := contact{start: s, end: e}
	v := string(buf[s:e])
	if lt := rawsip.IndexUnquoted(v, '<'); lt >= 0 {
		gt := strings.IndexByte(v[lt:], '>')
		if gt < 0 {
			return c, false
		}
		c.uriStart, c.uriEnd, c.bracket = s+lt+1, s+lt+gt, true
	} else {
		end := strings.IndexByte(v, ';')
		if end < 0 {
			end = len(v)
		}
		c.uriStart, c.uriEnd = s, s+len(strings.TrimRight(v[:end], " \t"))
	}
	us := string(buf[c.uriStart:c.uriEnd])
	u, ok := rawsip.ParseURI(us)
	if !ok || u.Host == "" {
		return c, false
	}
	c.uri = u
	// host[:port] ends where the parameters or headers start
	hp := strings.IndexByte(us, ':') + 1
	if at := strings.LastIndexByte(us[:len(us)-len(u.Params)-len(u.Headers)], '@'); at >= 0 {
		hp = at + 1
	}
	c.hpEnd = c.uriStart + hp + len(u.Host)
	if u.Port != "" {
		c.hpEnd += 1 + len(u.Port)
	}
	return c, true
}

func firstContact(m *engine.Msg) (contact, bool) {
	cs := contacts(m, true)
	if len(cs) == 0 {
		return contact{}, false
	}
	return cs[0], true
}

func isWS(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// hostport formats an address as a URI host:port (IPv6 in brackets).
func hostport(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	if a.Is6() {
		return "[" + a.String() + "]:" + strconv.Itoa(int(ap.Port()))
	}
	return a.String() + ":" + strconv.Itoa(int(ap.Port()))
}

// protoDigit is Kamailio's protocol number in alias values (1 udp, 2 tcp, 3 tls, 4 sctp, 5 ws, 6 wss).
var protoNames = []string{"", "udp", "tcp", "tls", "sctp", "ws", "wss"}

func protoDigit(p engine.Proto) byte {
	if p >= engine.UDP && p <= engine.WSS {
		return '0' + byte(p) // engine.Proto values are Kamailio's protocol numbers
	}
	return '1'
}

// srcURI is Kamailio's get_src_uri: "sip:IP:PORT", with ";transport=tcp" unless UDP.
func srcURI(m *engine.Msg) string {
	s := "sip:" + hostport(m.Src)
	if m.Proto != engine.UDP {
		s += ";transport=" + m.Proto.String()
	}
	return s
}

// fixNatedContact is fix_nated_contact(): the first Contact URI's host:port becomes the source address
// (a maddr parameter is dropped). 1 done, -1 no usable Contact or already changed.
func (n *Nathelper) fixNatedContact(m *engine.Msg) int {
	c, ok := firstContact(m)
	st := msgState(m)
	if !ok || st.contactChanged {
		return -1
	}
	hpStart := c.hpEnd - len(c.uri.Host)
	if c.uri.Port != "" {
		hpStart -= 1 + len(c.uri.Port)
	}
	rest := string(m.Buf[c.hpEnd:c.uriEnd])
	if _, s, e, ok := rawsip.Param(rest, "maddr"); ok {
		rest = rest[:s] + rest[e:]
	}
	m.AddEdit(hpStart, c.uriEnd, hostport(m.Src)+rest)
	st.contactChanged = true
	return 1
}

// fixNatedRegister is fix_nated_register(): the source URI goes to the received AVP for the registrar.
// 1 (also when received_avp is "", as in Kamailio), -1 never.
func (n *Nathelper) fixNatedRegister(m *engine.Msg) int {
	if n.avp == "" {
		return 1
	}
	if m.AVPs == nil {
		m.AVPs = map[string][]engine.Value{}
	}
	m.AVPs[n.avp] = append(m.AVPs[n.avp], engine.StrVal(srcURI(m)))
	return 1
}

// aliasValue is "IP~PORT~D" of the source (IPv6 in brackets).
func aliasValue(m *engine.Msg) string {
	a := m.Src.Addr().Unmap()
	ip := a.String()
	if a.Is6() {
		ip = "[" + ip + "]"
	}
	return ip + "~" + strconv.Itoa(int(m.Src.Port())) + "~" + string(protoDigit(m.Proto))
}

// addContactAlias is add_contact_alias(): ";alias=IP~PORT~PROTO" of the source goes after the Contact
// URI's host:port unless the Contact already names the source. 1 added, 2 not needed or no Contact, -1
// error or a second change.
func (n *Nathelper) addContactAlias(m *engine.Msg) int {
	if m.Raw.Find(m.Buf, "contact") < 0 {
		return 2
	}
	c, ok := firstContact(m)
	if !ok {
		return -1
	}
	if sameIP(c.uri.Host, m.Src.Addr()) && c.port() == int(m.Src.Port()) && c.proto() == m.Proto.String() {
		return 2
	}
	return n.insertAlias(m, c, aliasValue(m))
}

// addContactAliasAddr is add_contact_alias(ip, port, proto): the alias from the arguments. 1 added,
// 2 no Contact, -1 bad arguments or a second change.
func (n *Nathelper) addContactAliasAddr(m *engine.Msg, ip, port, proto string) int {
	if m.Raw.Find(m.Buf, "contact") < 0 {
		return 2
	}
	c, ok := firstContact(m)
	if !ok {
		return -1
	}
	if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil {
		return -1
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return -1
	}
	d := -1
	for i, name := range protoNames {
		if i > 0 && strings.EqualFold(proto, name) {
			d = i
		}
	}
	if d < 0 {
		return -1
	}
	return n.insertAlias(m, c, ip+"~"+port+"~"+strconv.Itoa(d))
}

func (n *Nathelper) insertAlias(m *engine.Msg, c contact, val string) int {
	st := msgState(m)
	if st.contactChanged {
		return -1
	}
	param := ";" + n.AliasName + "=" + val
	if !c.bracket {
		// Kamailio encloses the Contact value (header parameters too, as its lumps do) in <>
		m.AddEdit(c.start, c.start, "<")
		param += ">"
	}
	m.AddEdit(c.hpEnd, c.hpEnd, param)
	st.contactChanged = true
	return 1
}

// setContactAlias is set_contact_alias(): the source alias appended to the Contact URI, always. 1 or -1.
func (n *Nathelper) setContactAlias(m *engine.Msg) int { return n.setAlias(m, false) }

// setContactAliasTrim is set_contact_alias(1): an alias parameter already there is replaced.
func (n *Nathelper) setContactAliasTrim(m *engine.Msg) int { return n.setAlias(m, true) }

func (n *Nathelper) setAlias(m *engine.Msg, trim bool) int {
	c, ok := firstContact(m)
	st := msgState(m)
	if !ok || st.contactChanged {
		return -1
	}
	u := c.uri
	if trim {
		if _, s, e, ok := rawsip.Param(u.Params, n.AliasName); ok {
			u.Params = u.Params[:s] + u.Params[e:]
		}
	}
	u.Params += ";" + n.AliasName + "=" + aliasValue(m)
	text := u.String()
	if !c.bracket {
		text = "<" + text + ">"
	}
	m.AddEdit(c.uriStart, c.uriEnd, text)
	st.contactChanged = true
	return 1
}

// parseAlias turns "IP~PORT~D" into "sip:IP:PORT[;transport=P]"; the IP must be a literal address.
func parseAlias(v string) (string, bool) {
	ip, rest, ok1 := strings.Cut(v, "~")
	port, d, ok2 := strings.Cut(rest, "~")
	if !ok1 || !ok2 || len(d) != 1 || d[0] < '1' || d[0] > '6' {
		return "", false
	}
	if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil {
		return "", false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", false
	}
	if strings.Contains(ip, ":") && !strings.HasPrefix(ip, "[") {
		ip = "[" + ip + "]"
	}
	uri := "sip:" + ip + ":" + port
	if d != "1" {
		uri += ";transport=" + protoNames[d[0]-'0']
	}
	return uri, true
}

// handleRURIAlias is handle_ruri_alias(): the first alias parameter of the R-URI sets $du and is
// removed from the R-URI. 1 done, 2 no alias, -1 a bad alias.
func (n *Nathelper) handleRURIAlias(m *engine.Msg) int { return n.handleRURIAliasMode(m, 0) }

// handleRURIAliasMode is handle_ruri_alias(mode): mode 0 takes the first alias parameter, others the last.
func (n *Nathelper) handleRURIAliasMode(m *engine.Msg, mode int) int {
	if m.Request() == nil {
		return -1
	}
	u, ok := rawsip.ParseURI(m.RURI())
	if !ok {
		return -1
	}
	val, s, e, found := "", 0, 0, false
	for off := 0; off < len(u.Params); {
		v, ps, pe, ok := rawsip.Param(u.Params[off:], n.AliasName)
		if !ok {
			break
		}
		val, s, e, found = v, off+ps, off+pe, true
		if mode == 0 {
			break
		}
		off += pe
	}
	if !found {
		return 2
	}
	du, ok := parseAlias(val)
	if !ok {
		return -1
	}
	m.DstURI = du
	u.Params = u.Params[:s] + u.Params[e:]
	m.NewURI = u.String()
	return 1
}

// setAliasToPV is set_alias_to_pv(spec): the Contact's alias parameter, as a SIP URI, into a writable
// pseudo-variable ("$avp(x)", "$var(x)", "$du"). 1 done, -1 no alias or an unusable variable.
func (n *Nathelper) setAliasToPV(m *engine.Msg, spec string) int {
	name, arg, ok := engine.ParsePVSpec(spec)
	if !ok || m.E == nil {
		return -1
	}
	pv, ok := m.E.LookupPV(name)
	if !ok || pv.Set == nil {
		return -1
	}
	c, ok := firstContact(m)
	if !ok {
		return -1
	}
	v, _, _, ok := rawsip.Param(c.uri.Params, n.AliasName)
	if !ok {
		return -1
	}
	uri, ok := parseAlias(v)
	if !ok {
		return -1
	}
	if err := pv.Set(m, arg, engine.StrVal(uri)); err != nil {
		return -1
	}
	return 1
}

// addRcvParam is add_rcv_param(flag): ;received="sip:IP:PORT" as a header parameter of every Contact
// (flag 0), or as a URI parameter (flag != 0, UDP only). 1 done, -1 error.
func (n *Nathelper) addRcvParam(m *engine.Msg, flag int) int {
	if flag != 0 && m.Proto != engine.UDP {
		return -1
	}
	cs := contacts(m, false)
	if len(cs) == 0 {
		return -1
	}
	uri := srcURI(m)
	for _, c := range cs {
		if flag != 0 {
			m.AddEdit(c.uriEnd, c.uriEnd, ";received="+uri)
		} else {
			m.AddEdit(c.end, c.end, ";received=\""+uri+"\"")
		}
	}
	return 1
}
