package engine

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/engine/transport"
)

// Proto is a transport protocol (engine/transport).
type Proto = transport.Proto

const (
	ProtoNone = transport.ProtoNone
	UDP       = transport.UDP
	TCP       = transport.TCP
	TLS       = transport.TLS
	WS        = transport.WS
	WSS       = transport.WSS
)

// ParseProto accepts udp, tcp, tls, ws and wss in any case.
func ParseProto(s string) (Proto, bool) { return transport.ParseProto(s) }

// Msg is the context of one SIP message while it is routed: what module functions receive.
type Msg struct {
	Buf []byte     // the message as received
	Raw rawsip.Msg // positions of its parts in Buf

	// The sipgo form of the message (a *sip.Request or *sip.Response), built on first use by Request,
	// Response or Parsed: routing reads the raw positions (method, R-URI, headers, status), so most
	// messages are never parsed twice.
	sipMsg sip.Message

	Src   netip.AddrPort // where it came from
	Local *Listener      // the socket it arrived on
	conn  *transport.Conn

	Flags  uint64 // message flags (KSR.setflag)
	BFlags uint64 // branch flags of branch 0 (KSR.setbflag)
	SFlags uint64 // script flags (KSR.setsflag, $sf): per message here (Kamailio keeps them per process)

	// DstURI is the outbound destination ($du); "" = the R-URI.
	DstURI string
	// NewURI is the rewritten Request-URI ($ru); "" = unchanged.
	NewURI string
	// Path is the route set of branch 0 (Kamailio's path_vec, set by registrar lookup from a binding's
	// Path, RFC 3327): relayed requests carry it as a Route header in front of the others.
	Path string
	// ruri caches the received Request-URI as a string: RURI is asked several times per relayed request
	// (tm, rr, the Via and destination), and each call copied it. Set only by the goroutine that owns
	// the message (not for a shared, detached one: Detach copies it), cleared when Buf changes.
	ruri string

	// ReplyHdrs are headers added to locally generated replies (hdr.append_to_reply), CRLF-terminated.
	ReplyHdrs []byte
	// ReplyBody is the body of locally generated replies (textops set_reply_body); its Content-Type goes in
	// ReplyHdrs.
	ReplyBody []byte
	edits     []edit

	// The small fields sit together: a transaction keeps a copy of its request (Detach), and padding
	// between them cost 24 B a copy (the struct then needed the 576 B size class instead of 512).
	Proto          Proto // the transport it arrived on
	Replied        bool  // a reply was sent for this request
	Relayed        bool  // the request was sent on (forward, t_relay) or absorbed by its transaction
	Dropped        bool  // KSR.drop() / KSR.x.drop(): do not relay (a reply route drops the reply)
	ForceRport     bool  // KSR.force_rport(): add rport to the Via of replies and use it
	ReplyNoConnect bool  // KSR.set_reply_no_connect(): never open a TCP connection for replies
	reply          bool  // the start line is a status line (from the raw bytes)
	parse          parseState
	// parseMu guards the lazy parse of a message shared between goroutines (shared, set by Detach: a
	// transaction's request is read by the worker, the timers and the reply path); unused for a message
	// only its worker reads. In the struct rather than allocated: one allocation less per transaction.
	parseMu sync.Mutex

	// ForwardNoConnect (KSR.set_forward_no_connect) keeps a stateless forward from opening a TCP
	// connection: only an existing one is used. LocalRport (KSR.add_local_rport) puts ;rport in the
	// proxy's own Via of relayed requests (stateless and tm), RFC 3581.
	ForwardNoConnect, LocalRport bool
	keep                         bool  // RouteOffline: not recycled after routing
	shared                       bool  // made by Detach: parses under parseMu, caches no R-URI
	ruriQ                        int32 // the R-URI branch's q × 1000 plus 2 (0 = never set); see SetRURIQ

	// AVPs live for the message ($avp); Vars belong to the worker ($var), as in Kamailio.
	AVPs map[string][]Value
	Vars map[string]Value

	// Branches are the extra destinations of a parallel fork (corex.append_branch, registrar lookup).
	Branches []Branch

	// mod is state of the module functions for this message, keyed by module name (rr's Record-Route):
	// ModState, SetModState, DelModState. A few pairs in a slice, not a map: a message holds one to three
	// (rr, dialog, auth), a map costs ~330 B a message and as much again in every transaction's copy, and
	// the slice keeps its array when the message is recycled.
	mod []modKV
	E   *Engine

	w   *worker     // the worker routing it
	gen *Generation // the script generation its routes run on
	job func(*Msg)  // RunOnWorker: run this instead of routing the message
}

// Branch is one additional destination of a request (Kamailio's dset entry).
type Branch struct {
	URI    string // the Request-URI of the branch
	DstURI string // its outbound destination ("" = the URI)
	Q      int    // q value × 1000 (-1 = none)
	Flags  uint64 // branch flags
	Path   string // its route set (a binding's Path), sent as a Route header ("" = none)
}

// SetRURIQ records the q (× 1000, -1 = none) of the Request-URI branch, Kamailio's set_ruri_q: registrar
// lookup gives it the q of the contact it put in the R-URI, so t_load_contacts orders it with the branches.
func (m *Msg) SetRURIQ(q int) { m.ruriQ = int32(q + 2) }

// RURIQ returns the q of the Request-URI branch × 1000, -1 when none was set.
func (m *Msg) RURIQ() int {
	if m.ruriQ == 0 {
		return -1
	}
	return int(m.ruriQ) - 2
}

// st is the worker's script state while the message is routed (the worker's state of the message's
// generation), nil otherwise. Derived rather than stored: a transaction keeps a copy of its request.
func (m *Msg) st() State {
	if m.w == nil || m.gen == nil {
		return nil
	}
	return m.gen.states[m.w.id]
}

// modKV is one module's state for a message (Msg.ModState).
type modKV struct {
	key string
	v   any
}

// ModState returns the state module key keeps for the message, nil when it has none.
func (m *Msg) ModState(key string) any {
	for i := range m.mod {
		if m.mod[i].key == key {
			return m.mod[i].v
		}
	}
	return nil
}

// SetModState sets the state module key keeps for the message (a nil v deletes it).
func (m *Msg) SetModState(key string, v any) {
	if v == nil {
		m.DelModState(key)
		return
	}
	for i := range m.mod {
		if m.mod[i].key == key {
			m.mod[i].v = v
			return
		}
	}
	if m.mod == nil {
		m.mod = make([]modKV, 0, 2)
	}
	m.mod = append(m.mod, modKV{key, v})
}

// DelModState deletes the state module key keeps for the message.
func (m *Msg) DelModState(key string) {
	for i := range m.mod {
		if m.mod[i].key == key {
			last := len(m.mod) - 1
			m.mod[i] = m.mod[last]
			m.mod[last] = modKV{}
			m.mod = m.mod[:last]
			return
		}
	}
}

var msgPool = sync.Pool{New: func() any { return new(Msg) }}

func newMsg() *Msg { return msgPool.Get().(*Msg) }

// release clears the message for reuse, keeping its buffers.
func (m *Msg) release() {
	if m.keep { // routed offline: the caller reads it afterwards
		return
	}
	buf, hdrs, edits, rh := m.Buf[:0], m.Raw.Hdrs[:0], m.edits[:0], m.ReplyHdrs[:0]
	clear(m.mod) // drop the states, keep the array
	mod := m.mod[:0]
	*m = Msg{Buf: buf, edits: edits, ReplyHdrs: rh, mod: mod}
	m.Raw.Hdrs = hdrs
	msgPool.Put(m)
}

// parseState tracks the lazy sipgo parse of a message.
type parseState uint8

const (
	parseNone parseState = iota // not parsed yet
	parseOK
	parseFailed // sipgo rejected what the raw checks accepted: Request/Response/Parsed give nil
)

// parsed builds the sipgo form of the message once. A message shared between goroutines (a transaction's,
// made by Detach) parses under its parseMu.
func (m *Msg) parsed() {
	if m.shared {
		m.parseMu.Lock()
		defer m.parseMu.Unlock()
	}
	if m.parse != parseNone {
		return
	}
	m.parse = parseFailed
	var p *sip.Parser
	if m.E != nil {
		p = m.E.parser
	}
	if p == nil {
		p = sip.NewParser()
	}
	sm, err := p.ParseSIP(m.Buf)
	if err != nil {
		if m.E != nil && m.E.log != nil {
			m.E.log.Debug("message not parseable by sipgo", "src", m.Src.String(), "err", err)
		}
		return
	}
	m.sipMsg, m.parse = sm, parseOK
}

// Parsed returns the message parsed by sipgo (parsing it on first use), nil if sipgo cannot parse it.
// Routing reads the raw positions; this is for functions that need typed headers.
func (m *Msg) Parsed() sip.Message {
	m.parsed()
	return m.sipMsg
}

// Request returns the request parsed by sipgo (parsing it on first use); nil for a reply (or a request
// sipgo cannot parse). IsRequest answers "is it a request" without parsing.
func (m *Msg) Request() *sip.Request {
	if m.reply {
		return nil
	}
	m.parsed()
	r, _ := m.sipMsg.(*sip.Request)
	return r
}

// Response returns the reply parsed by sipgo (parsing it on first use); nil for a request (or a reply sipgo
// cannot parse). IsReply answers "is it a reply" without parsing.
func (m *Msg) Response() *sip.Response {
	if !m.reply {
		return nil
	}
	m.parsed()
	r, _ := m.sipMsg.(*sip.Response)
	return r
}

// IsRequest tells a request from a reply, from the start line.
func (m *Msg) IsRequest() bool { return !m.reply && len(m.Buf) > 0 }

// IsReply tells a reply from a request, from the start line.
func (m *Msg) IsReply() bool { return m.reply }

// IsAck reports whether the message is an ACK request.
func (m *Msg) IsAck() bool { return !m.reply && bytes.HasPrefix(m.Buf, []byte("ACK ")) }

// Method returns the request method, or the CSeq method of a reply.
func (m *Msg) Method() string {
	if !m.reply {
		if sp := bytes.IndexByte(m.Buf[:m.Raw.FirstLineEnd], ' '); sp > 0 {
			return internMethod(m.Buf[:sp])
		}
		return ""
	}
	if v, ok := m.Raw.Value(m.Buf, "cseq"); ok {
		if _, meth, ok := cseqParts(v); ok {
			return internMethod(meth)
		}
	}
	return ""
}

// internMethod returns the method as a string, without allocating for the methods of RFC 3261 and its
// extensions.
func internMethod(b []byte) string {
	for _, s := range knownMethods {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

var knownMethods = [...]string{"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY",
	"PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER"}

// RURI returns the current Request-URI as a string ($ru): the rewritten one if set.
func (m *Msg) RURI() string {
	if m.NewURI != "" {
		return m.NewURI
	}
	if m.reply {
		return ""
	}
	return m.origRURI()
}

// origRURI is the Request-URI as received, cached in m.ruri unless the message is shared (detached).
func (m *Msg) origRURI() string {
	if m.ruri != "" {
		return m.ruri
	}
	s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw)
	if !ok {
		return ""
	}
	u := string(m.Buf[s:e])
	if !m.shared {
		m.ruri = u
	}
	return u
}

// ParsedRURI parses the current Request-URI.
func (m *Msg) ParsedRURI() (sip.Uri, bool) {
	if !m.IsRequest() {
		return sip.Uri{}, false
	}
	var u sip.Uri // the URI alone: never the whole message
	if err := sip.ParseUri(m.RURI(), &u); err != nil {
		return sip.Uri{}, false
	}
	return u, true
}

// Header returns the value of the first header named name (case-insensitive, compact forms too).
// HeaderValue is the value of the first header name (full or compact name), "" when it is absent.
func (m *Msg) HeaderValue(name string) string {
	v, _ := m.Header(name)
	return v
}

func (m *Msg) Header(name string) (string, bool) {
	lname := HeaderName(name)
	if v, ok := m.Raw.Value(m.Buf, lname); ok {
		return string(v), true
	}
	return "", false
}

// Headers returns the values of all headers named name.
func (m *Msg) Headers(name string) []string {
	lname := HeaderName(name)
	var out []string
	for _, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			out = append(out, string(h.Value(m.Buf)))
		}
	}
	return out
}

// HeaderName is the lower-case full name rawsip matches on: "v" and "V" become "via", as Kamailio's
// header-name parser treats compact names.
func HeaderName(name string) string {
	if len(name) == 1 {
		if full := rawsip.Compact(name[0]); full != "" {
			return full
		}
	}
	return strings.ToLower(name)
}

// Body returns the message body.
func (m *Msg) Body() []byte {
	if m.Raw.Body > len(m.Buf) {
		return nil
	}
	return m.Buf[m.Raw.Body:]
}

// StatusCode returns a reply's status code, 0 for a request.
func (m *Msg) StatusCode() int {
	if !m.reply {
		return 0
	}
	code, _, _ := statusLine(m.Buf[:m.Raw.FirstLineEnd])
	return code
}

// Reason returns a reply's reason phrase, "" for a request.
func (m *Msg) Reason() string {
	if !m.reply {
		return ""
	}
	code, reason, _ := statusLine(m.Buf[:m.Raw.FirstLineEnd])
	if std := Reason(code); std == string(reason) { // "OK", "Ringing": no copy (tm keeps it per branch)
		return std
	}
	return string(reason)
}
