package engine

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/engine/resolve"
)

// Target is where a message goes: transport, address and the host as written (for logs).
type Target struct {
	Proto Proto
	Addr  netip.AddrPort
}

// Dest is a destination URI as RFC 3263 needs it.
type Dest struct {
	Host  string // as written, IPv6 without brackets
	Port  int    // 0 when the URI has none
	Proto Proto  // the transport the URI (;transport=) or the script forces; ProtoNone = free choice
}

// ParseDest parses a SIP URI into a destination.
func ParseDest(uri string) (Dest, error) {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return Dest{}, fmt.Errorf("destination %q: %w", uri, err)
	}
	d := Dest{Host: strings.Trim(u.Host, "[]"), Port: u.Port}
	if u.IsEncrypted() {
		d.Proto = TLS // sips: (RFC 3261 §26.2.2); transport=wss below keeps it secure
	}
	if tp, ok := u.UriParams.Get("transport"); ok {
		p, ok := ParseProto(tp)
		if !ok {
			return Dest{}, fmt.Errorf("destination %q: unsupported transport %q", uri, tp)
		}
		d.Proto = p
	}
	return d, nil
}

// Literal is the target of a destination whose host is an IP address (no DNS): the forced transport or
// UDP, the port or 5060.
func (d Dest) Literal() (Target, bool) {
	ip, err := netip.ParseAddr(d.Host)
	if err != nil {
		return Target{}, false
	}
	p, port := d.Proto, d.Port
	if p == ProtoNone {
		p = UDP
	}
	if port == 0 {
		port = 5060
		if p.Secure() {
			port = 5061
		}
	}
	return Target{Proto: p, Addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, true
}

// ErrResolving says that a destination's name is being looked up (ResolveURI does not wait).
var ErrResolving = errors.New("destination is being resolved")

// ResolveURI turns a SIP URI into its first target when that is known without waiting (an address, a
// cached DNS answer); otherwise it starts the lookup and returns ErrResolving.
func (e *Engine) ResolveURI(uri string) (Target, error) {
	d, err := ParseDest(uri)
	if err != nil {
		return Target{}, err
	}
	if t, ok := d.Literal(); ok {
		return t, nil
	}
	ts, ok, err := e.Resolve(d, func([]Target, error) {})
	if err != nil {
		return Target{}, fmt.Errorf("destination %q: %w", uri, err)
	}
	if !ok {
		return Target{}, fmt.Errorf("destination %q: %w", uri, ErrResolving)
	}
	return ts[0], nil
}

// Resolve finds the targets of a destination in the order RFC 3263 says to try them. When they are known at
// once (an IP address, /etc/hosts, a cached lookup) it returns them with ok=true and never calls done.
// Otherwise it returns ok=false and calls done once the lookup ends, on a resolver goroutine (never a
// route worker); with err != nil (too many lookups in flight) done is not called.
func (e *Engine) Resolve(d Dest, done func([]Target, error)) (ts []Target, ok bool, err error) {
	if t, ok := d.Literal(); ok {
		return []Target{t}, true, nil
	}
	transport := ""
	if d.Proto != ProtoNone {
		transport = d.Proto.String()
	}
	conv := func(ss []resolve.Server) ([]Target, error) { return e.targets(d, ss) }
	ss, ok, err := e.res.Async(d.Host, d.Port, transport, func(ss []resolve.Server, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		done(conv(ss))
	})
	if err != nil || !ok {
		return nil, ok, err
	}
	ts, err = conv(ss)
	return ts, true, err
}

// targets keeps the servers this proxy has a socket for, as Targets.
func (e *Engine) targets(d Dest, ss []resolve.Server) ([]Target, error) {
	out := make([]Target, 0, len(ss))
	for _, s := range ss {
		if p, ok := ParseProto(s.Transport); ok && e.tr.Pick(p, s.Addr.Addr()) != nil {
			out = append(out, Target{Proto: p, Addr: s.Addr})
			if p == TLS {
				e.tr.NoteServerName(s.Addr, d.Host) // outgoing TLS checks the certificate against the name
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %s: no server reachable over this proxy's transports", d.Host)
	}
	return out, nil
}

// Resolver is the engine's DNS resolver.
func (e *Engine) Resolver() *resolve.Resolver { return e.res }

// Forward relays the request statelessly (Kamailio's forward): to uri if given, else to $du, else to the
// R-URI. It adds the proxy's Via with a branch derived from the request's, so a retransmission is relayed
// with the same branch (RFC 3261 §16.11), and applies the script's header changes and R-URI rewrite.
// A name that is not in the DNS cache is looked up without holding the worker: a copy of the request is
// sent when the answer comes, and Forward returns nil at once (as Kamailio's forward returns 1 once sent).
func (m *Msg) Forward(uri string) error {
	if !m.IsRequest() {
		return errNotRequest
	}
	if uri == "" {
		uri = m.DstURI
	}
	if uri == "" {
		uri = m.RURI()
	}
	d, err := ParseDest(uri)
	if err != nil {
		return err
	}
	if t, ok := d.Literal(); ok { // the hot path: no DNS, no allocation for targets
		return m.forwardTo(t, d.Proto != ProtoNone)
	}
	e := m.E
	forced := d.Proto != ProtoNone
	if ss, err, ok := e.res.Cached(d.Host, d.Port, protoName(d.Proto)); ok { // cached: sent now
		if err != nil {
			return fmt.Errorf("destination %q: %w", uri, err)
		}
		ts, err := e.targets(d, ss)
		if err != nil {
			return fmt.Errorf("destination %q: %w", uri, err)
		}
		return m.forwardTargets(ts, forced)
	}
	dm := m.Detach() // m is recycled when the route ends; the lookup's callback sends this copy
	ts, ok, err := e.Resolve(d, func(ts []Target, err error) {
		if err != nil {
			e.log.Info("forward failed", "uri", uri, "err", err, "call_id", callID(dm))
			return
		}
		if err := dm.forwardTargets(ts, forced); err != nil {
			e.log.Info("forward failed", "uri", uri, "err", err, "call_id", callID(dm))
		}
	})
	if err != nil {
		return fmt.Errorf("destination %q: %w", uri, err)
	}
	if !ok {
		m.Relayed = true
		return nil
	}
	return dm.forwardTargets(ts, forced)
}

func protoName(p Proto) string {
	if p == ProtoNone {
		return ""
	}
	return p.String()
}

// forwardTargets sends to the first target that takes the message (RFC 3263 §4.3 for sending errors).
func (m *Msg) forwardTargets(ts []Target, forced bool) error {
	var err error
	for _, t := range ts {
		if err = m.forwardTo(t, forced); err == nil {
			return nil
		}
	}
	return err
}

// ForwardTo relays the request statelessly to a resolved target.
func (m *Msg) ForwardTo(t Target) error { return m.forwardTo(t, true) }

// forwardTo relays to t; unless forced, a UDP request too big for udp_mtu goes over TCP (RFC 3261 §18.1.1).
func (m *Msg) forwardTo(t Target, forced bool) error {
	e := m.E
	local := e.ListenerFor(m.Local, t)
	if local == nil {
		return fmt.Errorf("forward to %s:%s: no %s listener", t.Proto, t.Addr, t.Proto)
	}
	bp := getBuf()
	branch := m.statelessBranch()
	out := m.AppendRequest((*bp)[:0], local, t.Proto, branch, m.NewURI)
	if t.Proto == UDP && !forced && e.TooBigForUDP(len(out)) {
		tt := Target{Proto: TCP, Addr: t.Addr}
		if tl := e.ListenerFor(m.Local, tt); tl != nil {
			t, local = tt, tl
			out = m.AppendRequest(out[:0], local, t.Proto, branch, m.NewURI)
		}
	}
	var err error
	if m.RunOnSend(t.Proto, local, t.Addr, out) { // kemi.go
		err = e.send(t.Proto, local, t.Addr, out, m.ForwardNoConnect)
	} else {
		err = ErrOnSendDrop
	}
	*bp = out
	putBuf(bp)
	if err == nil {
		e.stats.forwarded.Add(1)
		m.Relayed = true
	}
	return err
}

// TooBigForUDP reports whether a request of n bytes should go over TCP instead of UDP: udp_mtu_try_tcp is
// on and n exceeds udp_mtu - 200 (RFC 3261 §18.1.1).
func (e *Engine) TooBigForUDP(n int) bool {
	return e.cfg.Core.UDPMTUTryTCP && n > e.cfg.Core.UDPMTU-200
}

// ListenerFor picks the socket a message to t leaves from: prefer (the one it arrived on) when it has the
// target's transport and address family.
// A wildcard socket gives the Listener of the local address used to reach the target.
func (e *Engine) ListenerFor(prefer *Listener, t Target) *Listener {
	return e.tr.ListenerFor(prefer, t.Proto, t.Addr.Addr())
}

// AppendRequest appends the request as relayed from socket local over proto to dst: the proxy's Via with
// the given branch on top, received/rport on the previous hop's Via, the Request-URI replaced by ruri (""
// keeps it), the script's edits (socket edits see local) and Content-Length added on a stream transport.
func (m *Msg) AppendRequest(dst []byte, local *Listener, proto Proto, branch, ruri string) []byte {
	var extraBuf [8]edit
	extra := extraBuf[:0]
	off := m.Raw.HdrsEnd
	if len(m.Raw.Hdrs) > 0 {
		off = int(m.Raw.Hdrs[0].Start)
	}
	first := off
	vi := m.Raw.Find(m.Buf, "via")
	if vi >= 0 {
		off = int(m.Raw.Hdrs[vi].Start)
	}
	// The texts of the proxy's Via and of the received/rport edits are written into one buffer, and the
	// edits are views of it: appendOutgoingFrom copies them into dst, and what is written is never
	// overwritten (a longer text moves on to a new array). One allocation where there were four. (The
	// buffer cannot live on the stack: the edits go through appendOutgoingFrom's growable list.)
	const viaParams = len(";rport=65535;received=") + 46 // the longest IPv6 text form
	txt := make([]byte, 0, len("Via: SIP/2.0/UDP ;branch=;rport\r\n")+len(local.SentBy)+len(branch)+viaParams)
	txt = append(txt, "Via: SIP/2.0/"...)
	txt = append(txt, proto.Upper()...)
	txt = append(txt, ' ')
	txt = append(txt, local.SentBy...)
	txt = append(txt, ";branch="...)
	txt = append(txt, branch...)
	if m.LocalRport {
		txt = append(txt, ";rport"...)
	}
	txt = append(txt, "\r\n"...)
	extra = append(extra, edit{off: int32(off), end: int32(off), text: rawsip.View(txt)})
	if vi >= 0 {
		// received/rport on the request's top Via (RFC 3261 §18.2.1, RFC 3581), so the reply finds its way back
		// as parameter edits, not a new value: the script's own edits inside that Via (textops) stay, as
		// with Kamailio's lumps
		h := m.Raw.Hdrs[vi]
		// A WebSocket client's Via names no reachable address (RFC 7118 §5: "*.invalid"): rport is filled in
		// so that a reply relayed statelessly finds the connection (received:rport over WS).
		// a view of the buffer, not a copy: the edits get new strings
		v := h.Value(m.Buf)
		extra, _ = appendViaReceivedEdits(extra, txt, rawsip.View(v), int(h.VStart), m.Src, m.ForceRport || m.Proto.WebSocket())
	}
	if m.Path != "" { // the registrar's route set to the contact (RFC 3327): before the Routes, as Kamailio
		if ri := m.Raw.Find(m.Buf, "route"); ri >= 0 {
			first = int(m.Raw.Hdrs[ri].Start)
		}
		extra = append(extra, edit{off: int32(first), end: int32(first), text: "Route: " + m.Path + "\r\n"})
	}
	if ruri != "" {
		if s, en, ok := rawsip.RequestURI(m.Buf, &m.Raw); ok {
			extra = append(extra, edit{off: int32(s), end: int32(en), text: ruri})
		}
	}
	if proto.Stream() {
		if cl, ok := m.contentLengthEdit(); ok {
			extra = append(extra, cl)
		}
	}
	return m.appendOutgoingFrom(dst, local, extra...)
}

// appendViaReceivedEdits appends the edits that give the first value of Via value v (at offset base of
// the buffer) what viaWithReceived gives it: the rport value filled in (or added when forced), received
// added last. The same bytes as viaWithReceived when nothing else edits the Via. Their texts are appended
// to txt and are views of it (see AppendRequest): valid while the caller keeps txt's arrays.
func appendViaReceivedEdits(extra []edit, txt []byte, v string, base int, src netip.AddrPort, forceRport bool) ([]edit, []byte) {
	end := rawsip.FirstValueEndString(v)
	sentBy, params, host := splitVia(v[:end])
	_, rs, re, hasRport := rawsip.Param(params, "rport")
	if hasRport || forceRport {
		s := len(txt)
		txt = append(txt, ";rport="...)
		txt = strconv.AppendUint(txt, uint64(src.Port()), 10)
		if hasRport {
			p := base + len(sentBy)
			extra = append(extra, edit{off: int32(p + rs), end: int32(p + re), text: rawsip.View(txt[s:])})
		} else {
			extra = append(extra, edit{off: int32(base + end), end: int32(base + end), text: rawsip.View(txt[s:])})
		}
	}
	_, _, _, hasRecv := rawsip.Param(params, "received")
	if hasRport || hasRecv || !sameHost(host, src.Addr()) {
		s := len(txt)
		txt = append(txt, ";received="...)
		txt = src.Addr().Unmap().AppendTo(txt)
		extra = append(extra, edit{off: int32(base + end), end: int32(base + end), text: rawsip.View(txt[s:])})
	}
	return extra, txt
}

// statelessBranch derives the Via branch of a statelessly forwarded request from what identifies its
// transaction (RFC 3261 §16.11, and the fields Kamailio hashes): the top Via (sent-by and branch), Call-ID,
// CSeq number, From tag, the received Request-URI and, except for INVITE/ACK/CANCEL, the To tag. A
// retransmission gets the same branch, and so does a CANCEL for the INVITE it cancels, as a downstream
// server needs to match it; different clients reusing a branch do not collide.
func (m *Msg) statelessBranch() string {
	// FNV-1a over the fields, a zero byte after each, on views of the raw message: no allocation until the
	// branch string itself (ACK and in-dialog requests take this path on every call).
	h := uint64(14695981039346656037)
	put := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
		h *= 1099511628211 // the separator: ^ 0 leaves h as it is
	}
	if via, ok := m.TopVia(); ok {
		put(via.Host)
		put(strconv.Itoa(via.Port))
		b, _, _, _ := rawsip.Param(via.Params, "branch")
		put(b)
	}
	cid, _ := m.Raw.Value(m.Buf, "call-id")
	put(strings.TrimSpace(rawsip.View(cid)))
	cs, _ := m.Raw.Value(m.Buf, "cseq")
	if n, _, ok := cseqParts(cs); ok {
		put(strconv.Itoa(n))
	}
	put(m.tagView("from"))
	if s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw); ok {
		put(rawsip.View(m.Buf[s:e]))
	}
	switch m.Method() {
	case "INVITE", "ACK", "CANCEL":
	default:
		put(m.tagView("to"))
	}
	var b [len("z9hG4bKsl") + 16]byte
	copy(b[:], "z9hG4bKsl")
	hex.Encode(b[len("z9hG4bKsl"):], []byte{byte(h >> 56), byte(h >> 48), byte(h >> 40), byte(h >> 32),
		byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
	return string(b[:])
}

var errNotOurVia = errors.New("top Via is not this proxy's")

// routeReply relays a reply to a statelessly forwarded request: checks that the top Via is ours, runs
// ksr_reply_route, removes the top Via and sends the reply to the next one.
func (e *Engine) routeReply(m *Msg) {
	for _, h := range e.replyHooks {
		if h.OnReply(m) {
			return
		}
	}
	top, ok := m.TopVia() // on the raw bytes: a stateless relay never needs sipgo's full parse
	if !ok || !e.IsMyself(top.Host, top.Port) {
		e.stats.dropParse.Add(1)
		e.log.Debug("reply dropped", "src", m.Src.String(), "err", errNotOurVia)
		return
	}
	st := m.st() // taken once per message in process
	if err := st.ReplyRoute(m); err != nil {
		e.stats.luaErrors.Add(1)
		e.events.addRouteError("reply", m, err)
		var re *RouteError
		if errors.As(err, &re) {
			e.log.Error("script error in reply route", "where", re.Where, "err", re.Err, "call_id", callID(m))
		} else {
			e.log.Error("reply route failed", "err", err, "call_id", callID(m))
		}
	}
	if m.Dropped {
		e.stats.dropScript.Add(1)
		return
	}
	if err := e.RelayReply(m); err != nil {
		e.log.Info("reply not relayed", "err", err, "call_id", callID(m))
	}
}

// RelayReply removes the top Via of a reply and sends the reply to the next Via: on the connection it names
// for TCP, to received/rport when present (RFC 3581), otherwise to the sent-by address.
func (e *Engine) RelayReply(m *Msg) error {
	bp := getBuf()
	out, t, err := m.AppendRelayedReply((*bp)[:0])
	if err == nil {
		err = e.send(t.Proto, m.Local, t.Addr, out, false) // from the socket the reply came in on, as Kamailio
	}
	*bp = out
	putBuf(bp)
	if err == nil {
		e.stats.replySent(OriginRelayed, m.StatusCode())
	}
	return err
}

// AppendRelayedReply appends the reply as relayed upstream, without its top Via (and with Content-Length
// when the next hop is a stream), and returns where the next Via says it goes.
func (m *Msg) AppendRelayedReply(dst []byte) ([]byte, Target, error) {
	i := m.Raw.Find(m.Buf, "via")
	if i < 0 {
		return dst, Target{}, errors.New("reply has no Via")
	}
	h := m.Raw.Hdrs[i]
	v := h.Value(m.Buf)
	var rm edit
	var next string
	if end := rawsip.FirstValueEnd(v); end < len(v) {
		// several values in one header: remove the first and its comma
		rest := v[end+1:]
		k := 0
		for k < len(rest) && (rest[k] == ' ' || rest[k] == '\t' || rest[k] == '\r' || rest[k] == '\n') {
			k++
		}
		rm = edit{off: h.VStart, end: int32(int(h.VStart) + end + 1 + k)}
		next = string(rest[k:])
	} else {
		rm = edit{off: h.Start, end: h.End}
		for _, h2 := range m.Raw.Hdrs[i+1:] {
			if h2.Is(m.Buf, "via") {
				next = rawsip.View(h2.Value(m.Buf)) // parsed below, not kept
				break
			}
		}
	}
	if next == "" {
		return dst, Target{}, errors.New("reply has no second Via")
	}
	next = next[:rawsip.FirstValueEndString(next)]
	t, err := viaTarget(next)
	if err != nil {
		return dst, Target{}, err
	}
	var extraBuf [2]edit
	extra := append(extraBuf[:0], rm)
	if cl, ok := m.contentLengthEdit(); ok && t.Proto.Stream() {
		extra = append(extra, cl)
	}
	if dst == nil { // sized once, to what is known of the result (appending grew it several times)
		n := len(m.Buf)
		for _, e := range extra {
			n += len(e.text) - int(e.end-e.off)
		}
		for _, e := range m.edits {
			n += len(e.text) // socket edits (fn) grow it later, as before
		}
		dst = make([]byte, 0, n)
	}
	return m.appendOutgoing(dst, extra...), t, nil
}

// viaTarget is where a reply goes for a Via value: received and rport when the previous hop filled them,
// otherwise the sent-by host and port.
func viaTarget(v string) (Target, error) {
	vp, err := ParseVia(v)
	if err != nil {
		return Target{}, err
	}
	proto, ok := ParseProto(vp.Transport)
	if !ok {
		return Target{}, fmt.Errorf("next Via %q: unsupported transport %q", v, vp.Transport)
	}
	host, port := vp.Host, vp.Port
	if r, _, _, ok := rawsip.Param(vp.Params, "received"); ok && r != "" {
		host = r
	}
	if rp, _, _, ok := rawsip.Param(vp.Params, "rport"); ok && rp != "" {
		if p, err := strconv.Atoi(rp); err == nil {
			port = p
		}
	}
	if port == 0 {
		port = 5060
		if proto.Secure() {
			port = 5061
		}
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return Target{}, fmt.Errorf("next Via %q: host %q is not an address (no DNS for replies)", v, host)
	}
	return Target{Proto: proto, Addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, nil
}

// Via is one parsed Via value.
type Via struct {
	Transport string // "UDP"
	Host      string // as written (IPv6 in brackets)
	Port      int    // 0 when absent
	Params    string // ";branch=...;rport", empty if none
}

// TopVia is the first value of the first Via header, parsed on a view of the buffer: its strings are only
// valid until the message is recycled (strings.Clone what is kept).
func (m *Msg) TopVia() (Via, bool) {
	b, ok := m.Raw.Value(m.Buf, "via")
	if !ok {
		return Via{}, false
	}
	v := rawsip.View(b)
	via, err := ParseVia(v[:rawsip.FirstValueEndString(v)])
	return via, err == nil
}

// ParseVia parses one Via value ("SIP/2.0/UDP host:port;params").
func ParseVia(v string) (Via, error) {
	v = strings.TrimSpace(v)
	proto, rest, ok := strings.Cut(v, "/")
	if !ok || !strings.EqualFold(strings.TrimSpace(proto), "SIP") {
		return Via{}, fmt.Errorf("via %q: expected SIP/2.0/transport", v)
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return Via{}, fmt.Errorf("via %q: expected SIP/2.0/transport", v)
	}
	rest = strings.TrimLeft(rest, " \t")
	sp := strings.IndexAny(rest, " \t")
	if sp < 0 {
		return Via{}, fmt.Errorf("via %q: no sent-by", v)
	}
	var out Via
	out.Transport = strings.ToUpper(rest[:sp])
	sentBy := strings.TrimSpace(rest[sp:])
	if i := strings.IndexByte(sentBy, ';'); i >= 0 {
		sentBy, out.Params = strings.TrimSpace(sentBy[:i]), sentBy[i:]
	}
	host, port, err := SplitHostPort(sentBy)
	if err != nil {
		return Via{}, fmt.Errorf("via %q: %w", v, err)
	}
	out.Host, out.Port = host, port
	return out, nil
}
