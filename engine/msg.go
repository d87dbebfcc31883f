package engine

import (
	"net/netip"
	"strings"
	"sync"
	"time"

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
)

// ParseProto accepts udp/tcp in any case.
func ParseProto(s string) (Proto, bool) { return transport.ParseProto(s) }

// Msg is the context of one SIP message while it is routed: what module functions receive.
type Msg struct {
	Buf []byte     // the message as received
	Raw rawsip.Msg // positions of its parts in Buf
	SIP sip.Message
	Req *sip.Request  // nil for a reply
	Res *sip.Response // nil for a request

	Src   netip.AddrPort // where it came from
	Proto Proto
	Local *Listener // the socket it arrived on
	conn  *transport.Conn
	Recv  time.Time

	Flags  uint64 // message flags (KSR.setflag)
	BFlags uint64 // branch flags of branch 0 (KSR.setbflag)

	// DstURI is the outbound destination ($du); "" = the R-URI.
	DstURI string
	// NewURI is the rewritten Request-URI ($ru); "" = unchanged.
	NewURI string
	// Path is the route set of branch 0 (Kamailio's path_vec, set by registrar lookup from a binding's
	// Path, RFC 3327): relayed requests carry it as a Route header in front of the others.
	Path  string
	ruriQ int // the R-URI branch's q × 1000 plus 2 (0 = never set); see SetRURIQ

	// ReplyHdrs are headers added to locally generated replies (hdr.append_to_reply), CRLF-terminated.
	ReplyHdrs []byte
	edits     []edit

	Replied        bool // a reply was sent for this request
	Relayed        bool // the request was sent on (forward, t_relay) or absorbed by its transaction
	Dropped        bool // KSR.drop() / KSR.x.drop(): do not relay (a reply route drops the reply)
	ForceRport     bool // KSR.force_rport(): add rport to the Via of replies and use it
	ReplyNoConnect bool // KSR.set_reply_no_connect(): never open a TCP connection for replies

	// AVPs live for the message ($avp); Vars belong to the worker ($var), as in Kamailio.
	AVPs map[string][]Value
	Vars map[string]Value

	// Branches are the extra destinations of a parallel fork (corex.append_branch, registrar lookup).
	Branches []Branch
	// Tx is tm's state for the message (its transaction, the kind of route running); nil outside tm.
	Tx any

	// Mod is state of the module functions for this message, keyed by module name (rr's Record-Route).
	Mod map[string]any
	E   *Engine

	st     State       // the worker's script state while the message is routed
	budget *budget     // the worker's route_timeout budget while the message is routed
	w      *worker     // the worker routing it
	gen    *Generation // the script generation its routes run on
	job    func(*Msg)  // RunOnWorker: run this instead of routing the message
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
func (m *Msg) SetRURIQ(q int) { m.ruriQ = q + 2 }

// RURIQ returns the q of the Request-URI branch × 1000, -1 when none was set.
func (m *Msg) RURIQ() int {
	if m.ruriQ == 0 {
		return -1
	}
	return m.ruriQ - 2
}

var msgPool = sync.Pool{New: func() any { return new(Msg) }}

func newMsg() *Msg { return msgPool.Get().(*Msg) }

// release clears the message for reuse, keeping its buffers.
func (m *Msg) release() {
	buf, hdrs, edits, rh := m.Buf[:0], m.Raw.Hdrs[:0], m.edits[:0], m.ReplyHdrs[:0]
	*m = Msg{Buf: buf, edits: edits, ReplyHdrs: rh}
	m.Raw.Hdrs = hdrs
	msgPool.Put(m)
}

// IsRequest tells a request from a reply.
func (m *Msg) IsRequest() bool { return m.Req != nil }

// Method returns the request method, or the CSeq method of a reply.
func (m *Msg) Method() string {
	if m.Req != nil {
		return string(m.Req.Method)
	}
	if m.Res != nil {
		if cs := m.Res.CSeq(); cs != nil {
			return string(cs.MethodName)
		}
	}
	return ""
}

// RURI returns the current Request-URI as a string ($ru): the rewritten one if set.
func (m *Msg) RURI() string {
	if m.NewURI != "" {
		return m.NewURI
	}
	if m.Req == nil {
		return ""
	}
	s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw)
	if !ok {
		return m.Req.Recipient.String()
	}
	return string(m.Buf[s:e])
}

// ParsedRURI parses the current Request-URI.
func (m *Msg) ParsedRURI() (sip.Uri, bool) {
	if m.Req == nil {
		return sip.Uri{}, false
	}
	if m.NewURI == "" {
		return m.Req.Recipient, true
	}
	var u sip.Uri
	if err := sip.ParseUri(m.NewURI, &u); err != nil {
		return sip.Uri{}, false
	}
	return u, true
}

// Header returns the value of the first header named name (case-insensitive, compact forms too).
func (m *Msg) Header(name string) (string, bool) {
	lname := HeaderName(name)
	if i := m.Raw.Find(m.Buf, lname); i >= 0 {
		return string(m.Raw.Hdrs[i].Value(m.Buf)), true
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
	if m.Res != nil {
		return m.Res.StatusCode
	}
	return 0
}
