// Package sanity checks requests for malformed parts before they are routed (Kamailio's sanity module):
// the R-URI, the transaction headers, CSeq, Content-Length, Expires, Proxy-Require, the URIs of From, To and
// Contact, digest credentials and duplicate tags. A failed check answers the request with Kamailio's status
// and reason (unless noreply is set) and returns -1.
package sanity

import (
	"fmt"
	"strings"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "sanity", New: func() engine.Instance {
		return &Sanity{DefaultChecks: DefaultChecks, URIChecks: DefaultURIChecks, Autodrop: true}
	}})
}

// The message checks (sanity_check's first argument), Kamailio's SANITY_* bits.
const (
	CheckRURIVersion   = 1 << 0  // SIP version in the request line is 2.0 (505)
	CheckRURIScheme    = 1 << 1  // R-URI parses with a known scheme (400 Bad Request URI)
	CheckRequiredHdrs  = 1 << 2  // From, To, Call-ID, CSeq present, none twice (no reply)
	CheckViaVersion    = 1 << 3  // a no-op in Kamailio ("useless check"): always passes
	CheckViaProtocol   = 1 << 4  // a no-op in Kamailio: always passes
	CheckCSeqMethod    = 1 << 5  // CSeq method equals the request method
	CheckCSeqValue     = 1 << 6  // CSeq number is a 32-bit unsigned integer
	CheckContentLength = 1 << 7  // Content-Length equals the body length
	CheckExpires       = 1 << 8  // Expires is a 32-bit unsigned integer
	CheckProxyRequire  = 1 << 9  // every Proxy-Require option is in proxy_require (420)
	CheckParseURIs     = 1 << 10 // the URIs named by the uri checks parse
	CheckDigest        = 1 << 11 // Authorization/Proxy-Authorization digest credentials are complete
	CheckDupTags       = 1 << 12 // From and To carry at most one tag
	CheckAuthorization = 1 << 13 // like CheckDigest, but a non-digest scheme passes
	CheckVia1          = 1 << 14 // the first Via parses (no reply)

	// DefaultChecks is Kamailio's SANITY_DEFAULT_CHECKS (999).
	DefaultChecks = CheckRURIVersion | CheckRURIScheme | CheckRequiredHdrs | CheckCSeqMethod | CheckCSeqValue |
		CheckContentLength | CheckExpires | CheckProxyRequire | CheckDigest
	maxChecks = 1 << 15
)

// The URI checks (sanity_check's second argument).
const (
	URIRURI    = 1 << 0
	URIFrom    = 1 << 1
	URITo      = 1 << 2
	URIContact = 1 << 3

	DefaultURIChecks = URIRURI | URIFrom | URITo // 7
	maxURIChecks     = 1 << 4
)

// Sanity holds the module parameters (Kamailio's modparams of the same names).
type Sanity struct {
	// DefaultChecks are the message checks of sanity_check_defaults (Kamailio default_checks, 999).
	DefaultChecks int `toml:"default_checks"`
	// URIChecks are the URI checks of sanity_check_defaults (Kamailio uri_checks, 7).
	URIChecks int `toml:"uri_checks"`
	// ProxyRequire lists the Proxy-Require options this proxy supports, comma separated (Kamailio
	// proxy_require, default none: any Proxy-Require gets 420).
	ProxyRequire string `toml:"proxy_require"`
	// Autodrop is Kamailio's autodrop. It changes only the native-config sanity_check() (which stops the
	// script on failure); the KEMI functions always return -1 on failure and let the script decide, in
	// Kamailio as here. Kept so that a Kamailio configuration translates key for key.
	Autodrop bool `toml:"autodrop"`
	// Noreply stops sanity_check from answering: the failure's status and reason are kept for
	// sanity_reply() (Kamailio noreply).
	Noreply bool `toml:"noreply"`

	supported []string // ProxyRequire, split
}

// Validate checks the bit masks.
func (s *Sanity) Validate() error {
	if s.DefaultChecks < 0 || s.DefaultChecks >= maxChecks {
		return fmt.Errorf("default_checks: expected a bit mask 0..%d, got %d", maxChecks-1, s.DefaultChecks)
	}
	if s.URIChecks < 0 || s.URIChecks >= maxURIChecks {
		return fmt.Errorf("uri_checks: expected a bit mask 0..%d, got %d", maxURIChecks-1, s.URIChecks)
	}
	s.supported = splitList(s.ProxyRequire)
	return nil
}

// Exports: KSR.sanity.*.
func (s *Sanity) Exports() []engine.Export {
	return []engine.Export{
		{Name: "sanity_check", Fn: s.check},
		{Name: "sanity_check_defaults", Fn: s.checkDefaults},
		{Name: "sanity_reply", Fn: s.reply},
	}
}

// state is what sanity keeps for one message: with noreply, the reply a failed check wanted to send; and
// Kamailio's FL_MSG_NOREPLY, set by failures that must not be answered (a missing transaction header).
type state struct {
	code    int
	reason  string
	noReply bool
}

func getState(m *engine.Msg) *state {
	st, _ := m.ModState("sanity").(*state)
	return st
}

func setState(m *engine.Msg) *state {
	if st := getState(m); st != nil {
		return st
	}
	st := &state{}
	m.SetModState("sanity", st)
	return st
}

// checkDefaults is sanity_check_defaults(): the configured checks, 1 when they pass, -1 when one fails.
func (s *Sanity) checkDefaults(m *engine.Msg) int {
	return s.check(m, s.DefaultChecks, s.URIChecks)
}

// check is sanity_check(msg_checks, uri_checks): 1 when every selected check passes, -1 at the first that
// fails (after answering, as Kamailio's ki_sanity_check). Like Kamailio's KEMI function it does not range-
// check the masks: unknown bits are ignored.
func (s *Sanity) check(m *engine.Msg, msgChecks, uriChecks int) int {
	if s.Noreply {
		if st := getState(m); st != nil { // Kamailio's ksr_sanity_info_init: a new check forgets the last reply
			st.code, st.reason = 0, ""
		}
	}
	c := checker{s: s, m: m}
	if c.run(msgChecks, uriChecks) {
		return 1
	}
	return -1
}

// reply is sanity_reply(): with noreply, sends the reply the last failed check of this message kept (500
// "Server Sanity Failure" when none did); without noreply it does nothing. Always 1 except when sending
// fails (-1), as Kamailio's ki_sanity_reply.
func (s *Sanity) reply(m *engine.Msg) int {
	if !m.IsRequest() || m.IsAck() || !s.Noreply {
		return 1
	}
	st := getState(m)
	if st != nil && st.noReply {
		return 1
	}
	code, reason := 500, "Server Sanity Failure"
	if st != nil && st.code != 0 && st.reason != "" {
		code, reason = st.code, st.reason
	}
	if err := m.SendReply(code, reason); err != nil {
		return -1
	}
	return 1
}

// fail answers a failed check (Kamailio's sanity_reply helper): never a reply or an ACK; with noreply the
// status is kept for sanity_reply().
func (c *checker) fail(code int, reason string) bool {
	m := c.m
	if !m.IsRequest() || m.IsAck() {
		return false
	}
	if c.s.Noreply {
		st := setState(m)
		st.code, st.reason = code, reason
		return false
	}
	if st := getState(m); st != nil && st.noReply {
		return false
	}
	_ = m.SendReply(code, reason) // a send error is logged by the engine; the check failed either way
	return false
}

// failSilently is a failure Kamailio never answers (it sets FL_MSG_NOREPLY): the message lacks what a reply
// needs, or Kamailio's own parser rejected it.
func (c *checker) failSilently() bool {
	setState(c.m).noReply = true
	return false
}

// splitList splits a comma-separated list, trimming each element (Kamailio's parse_str_list); nil when
// the list is empty.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
