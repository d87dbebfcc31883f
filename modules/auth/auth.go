// Package auth is Kamailio's auth module: digest challenges (401/407) and verification of Digest
// credentials (RFC 7616, RFC 8760 SHA-256, RFC 2617 MD5) with stateless HMAC nonces and nonce-count replay
// protection. Where the passwords come from is pluggable: the pv_* functions take one from the script, and
// auth_db calls Authenticate with a Lookup over its users file and Redis (Kamailio's bind_auth_s API).
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
)

func init() {
	engine.Register(engine.Module{Name: "auth", New: func() engine.Instance {
		return &Auth{
			NonceExpire: 300, Algorithms: []string{"SHA-256", "MD5"}, QOP: "auth", NonceCount: true,
			NCArraySize: 1 << 18,
		}
	}})
}

// Auth holds the module parameters and its running state.
type Auth struct {
	// Secret keys the nonce HMAC; "" = random per start. Nodes sharing it validate each other's nonces.
	Secret string `toml:"secret"`
	// NonceExpire is a nonce's lifetime in seconds (Kamailio nonce_expire, 300).
	NonceExpire int `toml:"nonce_expire"`
	// Algorithms are offered in this order, one WWW-/Proxy-Authenticate header each (RFC 8760 §2.4).
	Algorithms []string `toml:"algorithms"`
	// QOP is offered when the challenge flags do not choose one: "auth" or "" (none).
	QOP string `toml:"qop"`
	// NonceCount turns nonce-count replay protection on (Kamailio nonce_count).
	NonceCount bool `toml:"nonce_count"`
	// NCArraySize bounds the nonces whose nonce-count is tracked (Kamailio nc_array_size).
	NCArraySize int `toml:"nc_array_size"`
	// UseDomain makes pv_auth_check compare the domains of the URIs too (Kamailio use_domain).
	UseDomain bool `toml:"use_domain"`

	algs   []Algorithm
	nonces *noncer
	nc     *ncTable
	log    *slog.Logger
	now    func() time.Time // the clock; tests move it
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Validate checks the parameters.
func (a *Auth) Validate() error {
	if a.NonceExpire < 1 {
		return fmt.Errorf("nonce_expire: expected seconds ≥ 1, got %d", a.NonceExpire)
	}
	if len(a.Algorithms) == 0 {
		return fmt.Errorf("algorithms: expected at least one of \"SHA-256\", \"MD5\", got none")
	}
	a.algs = a.algs[:0]
	for _, s := range a.Algorithms {
		alg, err := parseAlgorithmName(s)
		if err != nil {
			return fmt.Errorf("algorithms: %w", err)
		}
		for _, o := range a.algs {
			if o == alg {
				return fmt.Errorf("algorithms: %q listed twice", s)
			}
		}
		a.algs = append(a.algs, alg)
	}
	if a.QOP != "" && a.QOP != "auth" {
		return fmt.Errorf("qop: expected \"auth\" or \"\", got %q", a.QOP)
	}
	if a.NCArraySize < ncShards {
		return fmt.Errorf("nc_array_size: expected ≥ %d, got %d", ncShards, a.NCArraySize)
	}
	return nil
}

// Start makes the nonce key and starts the sweeper of expired nonce-counts.
func (a *Auth) Start(env *engine.Env) error {
	a.log = env.Log
	if a.algs == nil {
		if err := a.Validate(); err != nil {
			return err
		}
	}
	key := []byte(a.Secret)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	} else if len(key) < 16 {
		a.log.Warn("secret is short: use 16 characters or more")
	}
	a.nonces = newNoncer(key)
	a.nc = newNCTable(a.NCArraySize)
	if a.now == nil {
		a.now = time.Now
	}
	a.stop = make(chan struct{})
	every := time.Duration(a.NonceExpire) * time.Second / 2
	every = min(max(every, time.Second), time.Minute)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.nc.sweep(a.now().Unix())
			}
		}
	}()
	return nil
}

// Stop ends the sweeper.
func (a *Auth) Stop() error {
	if a.stop != nil {
		close(a.stop)
		a.wg.Wait()
		a.stop = nil
	}
	return nil
}

// Gauges: how many nonces have their nonce-count tracked.
func (a *Auth) Gauges() []engine.Gauge {
	return []engine.Gauge{{Name: "auth_nonces_tracked", Help: "Nonces whose nonce-count is tracked for replay protection.",
		Value: func() float64 {
			if a.nc == nil {
				return 0
			}
			return float64(a.nc.n.Load())
		}}}
}

// Exports: KSR.auth.*.
func (a *Auth) Exports() []engine.Export {
	return []engine.Export{
		{Name: "auth_challenge", Fn: a.authChallenge},
		{Name: "www_challenge", Fn: func(m *engine.Msg, realm string, flags int) int { return a.Challenge(m, realm, flags, WWW) }},
		{Name: "proxy_challenge", Fn: func(m *engine.Msg, realm string, flags int) int { return a.Challenge(m, realm, flags, Proxy) }},
		{Name: "consume_credentials", Fn: a.consumeCredentials},
		{Name: "has_credentials", Fn: a.hasCredentials},
		{Name: "pv_www_authenticate", Fn: func(m *engine.Msg, realm, passwd string, flags int) int {
			return a.pvAuthenticate(m, realm, passwd, flags, WWW)
		}},
		{Name: "pv_proxy_authenticate", Fn: func(m *engine.Msg, realm, passwd string, flags int) int {
			return a.pvAuthenticate(m, realm, passwd, flags, Proxy)
		}},
		{Name: "pv_auth_check", Fn: a.pvAuthCheck},
	}
}

// Return codes, as Kamailio's auth_cfg_result_t.
const (
	OK              = 1
	Error           = -1
	InvalidPassword = -2
	UserUnknown     = -3
	StaleNonce      = -4
	NoCredentials   = -5
	NonceReused     = -6
	UserMismatch    = -8
)

// HF says which header pair is used: WWW (401, WWW-Authenticate / Authorization) or Proxy (407,
// Proxy-Authenticate / Proxy-Authorization).
type HF uint8

const (
	WWW HF = iota
	Proxy
)

func (h HF) credHeader() string {
	if h == Proxy {
		return "proxy-authorization"
	}
	return "authorization"
}

func (h HF) challengeHeader() string {
	if h == Proxy {
		return "Proxy-Authenticate"
	}
	return "WWW-Authenticate"
}

// forMethod: auth_check and auth_challenge use WWW for REGISTER, Proxy for every other request.
func forMethod(m *engine.Msg) HF {
	if m.Method() == "REGISTER" {
		return WWW
	}
	return Proxy
}

// msgState is what the auth functions leave on a message: the credentials header they used
// (consume_credentials removes it) and whether its nonce was stale (the next challenge says stale=true).
type msgState struct {
	hdr   int // index in m.Raw.Hdrs, -1 = none
	stale bool
}

func state(m *engine.Msg) *msgState {
	if s, ok := m.ModState("auth").(*msgState); ok {
		return s
	}
	s := &msgState{hdr: -1}
	m.SetModState("auth", s)
	return s
}

// Realm returns the realm to use: realm itself, or for "" the host of To for REGISTER and of From for
// other requests (Kamailio's $td / $fd convention).
func Realm(m *engine.Msg, realm string) string {
	if realm != "" || m.Request() == nil {
		return realm
	}
	if m.Method() == "REGISTER" {
		if to := m.Request().To(); to != nil {
			return to.Address.Host
		}
		return ""
	}
	if from := m.Request().From(); from != nil {
		return from.Address.Host
	}
	return ""
}

// Secret is what a credentials source knows of a user: a plain password, or precomputed HA1 values
// (H(user:realm:password), hex) for MD5 and SHA-256. A password serves every algorithm.
type Secret struct {
	Password  string
	HA1MD5    string
	HA1SHA256 string
}

// Username is the username of credentials split at the first '@' (Kamailio's username.user/.domain).
type Username struct {
	Whole, User, Domain string
}

// Lookup finds a user's secret for a realm: found=false for an unknown user (-3), err when the source failed
// (-1). It runs on a route worker: it must answer from memory or within a strict timeout.
type Lookup func(u Username, realm string) (s Secret, found bool, err error)

// Result is what Authenticate found: the code and, when credentials were found, their username.
type Result struct {
	Code     int
	Username Username
	found    bool
}

// Authenticate verifies the credentials of request m for realm ("" = From/To host) in the Authorization
// (WWW) or Proxy-Authorization header, with the secret lookup returns, as Kamailio's pre_auth +
// check_response + post_auth: ACK, CANCEL and PRACK pass (they cannot be challenged).
func (a *Auth) Authenticate(m *engine.Msg, realm string, hf HF, lookup Lookup) Result {
	if m.Request() == nil {
		return Result{Code: Error}
	}
	switch m.Method() {
	case "ACK", "CANCEL", "PRACK":
		return Result{Code: OK}
	}
	realm = Realm(m, realm)
	if realm == "" {
		return Result{Code: Error}
	}
	c, idx, err := findCredentials(m, realm, hf, a.offers)
	if err != nil {
		a.log.Debug("credentials unreadable", "header", hf.credHeader(), "err", err)
		return Result{Code: Error}
	}
	if idx < 0 {
		return Result{Code: NoCredentials}
	}
	st := state(m)
	st.hdr = idx
	u := splitUsername(string(c.Username))
	res := Result{Code: Error, Username: u, found: true}

	// check_dig_cred: the mandatory parameters, qop with its cnonce and nc, an algorithm we offer
	if c.Username == nil || c.Realm == nil || c.Nonce == nil || c.URI == nil || c.Response == nil {
		return res
	}
	alg, ok := ParseAlgorithm(c.Algorithm)
	if !ok || !a.offers(alg) {
		a.log.Debug("credentials with an algorithm not offered", "algorithm", string(c.Algorithm))
		return res
	}
	var nc uint32
	if c.QOP != nil {
		if !asciiEqualFold(c.QOP, "auth") && !asciiEqualFold(c.QOP, "auth-int") {
			return res
		}
		n, err := strconv.ParseUint(string(c.NC), 16, 32)
		if c.CNonce == nil || len(c.NC) != 8 || err != nil || n == 0 {
			return res
		}
		nc = uint32(n)
	}
	key, expiry, ok := a.nonces.check(c.Nonce)
	if !ok {
		return res // not one of ours (another secret, a restart with a random secret): Kamailio's -1
	}
	now := a.now().Unix()
	if expiry < now {
		st.stale = true
		res.Code = StaleNonce
		return res
	}
	track := a.NonceCount && c.QOP != nil
	if track && a.nc.replayed(key, nc) {
		res.Code = NonceReused
		return res
	}

	sec, found, err := lookup(u, string(c.Realm))
	if err != nil {
		a.log.Warn("credentials lookup failed", "user", u.Whole, "err", err)
		return res
	}
	if !found {
		res.Code = UserUnknown
		return res
	}
	var ha1buf [64]byte
	var ha1 []byte
	switch {
	case sec.Password != "":
		ha1 = hashHex(ha1buf[:], alg, c.Username, c.Realm, []byte(sec.Password))
	case alg == MD5 && sec.HA1MD5 != "":
		ha1 = []byte(strings.ToLower(sec.HA1MD5))
	case alg == SHA256 && sec.HA1SHA256 != "":
		ha1 = []byte(strings.ToLower(sec.HA1SHA256))
	default:
		a.log.Warn("no secret for the algorithm the client chose: store the password or its HA1 for it",
			"user", u.Whole, "algorithm", alg.String())
		return res
	}
	if len(c.Response) != alg.HexLen() || len(ha1) != alg.HexLen() {
		return res // Kamailio: a response of the wrong length is bad credentials (-1)
	}
	var want [64]byte
	exp := expectedResponse(want[:], alg, ha1, &c, m.Method(), m.Body())
	if !equalHexFold(exp, c.Response) {
		res.Code = InvalidPassword
		return res
	}
	if track {
		switch a.nc.commit(key, nc, expiry, now) {
		case ncReplay:
			res.Code = NonceReused
			return res
		case ncFull:
			a.log.Warn("nonce-count table full (nc_array_size): answering stale to renew the nonce")
			st.stale = true
			res.Code = StaleNonce
			return res
		}
	}
	res.Code = OK
	return res
}

// equalHexFold compares a lower-case hex digest with a received one in constant time (the received one
// folded to lower case first: clients that send upper-case hex are accepted).
func equalHexFold(want, got []byte) bool {
	if len(want) != len(got) {
		return false
	}
	var low [64]byte
	for i, b := range got {
		if b >= 'A' && b <= 'F' {
			b += 'a' - 'A'
		}
		low[i] = b
	}
	return subtle.ConstantTimeCompare(want, low[:len(got)]) == 1
}

func (a *Auth) offers(alg Algorithm) bool {
	for _, o := range a.algs {
		if o == alg {
			return true
		}
	}
	return false
}

func splitUsername(s string) Username {
	u := Username{Whole: s, User: s}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		u.User, u.Domain = s[:i], s[i+1:]
	}
	return u
}

// findCredentials returns the first Digest credentials of the header type whose realm is realm (compared
// case-insensitively, as Kamailio does) and the header's index, or -1. When offers is set and a client sent
// credentials for the realm in several algorithms, the first one with an offered algorithm is taken.
func findCredentials(m *engine.Msg, realm string, hf HF, offers func(Algorithm) bool) (Credentials, int, error) {
	name := hf.credHeader()
	first, firstIdx := Credentials{}, -1
	for i, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, name) {
			continue
		}
		c, err := ParseCredentials(h.Value(m.Buf))
		if err == errNotDigest {
			continue
		}
		if err != nil {
			return c, -1, fmt.Errorf("%s header: %w", name, err)
		}
		if !strings.EqualFold(string(c.Realm), realm) {
			continue
		}
		if offers == nil {
			return c, i, nil
		}
		if alg, ok := ParseAlgorithm(c.Algorithm); ok && offers(alg) {
			return c, i, nil
		}
		if firstIdx < 0 {
			first, firstIdx = c, i
		}
	}
	return first, firstIdx, nil
}

// hasCredentials is has_credentials(realm): 1 when a Proxy-Authorization or Authorization header has
// Digest credentials for the realm.
func (a *Auth) hasCredentials(m *engine.Msg, realm string) int {
	if m.Request() == nil {
		return Error
	}
	realm = Realm(m, realm)
	for _, hf := range [...]HF{Proxy, WWW} {
		if _, i, _ := findCredentials(m, realm, hf, nil); i >= 0 {
			return OK
		}
	}
	return Error
}

// consumeCredentials removes the credentials header the last authentication used from the request that is
// relayed (not from what the script reads, as in Kamailio).
func (a *Auth) consumeCredentials(m *engine.Msg) int {
	if m.Request() == nil {
		return Error
	}
	switch m.Method() {
	case "ACK", "CANCEL", "PRACK":
		return Error
	}
	s, ok := m.ModState("auth").(*msgState)
	if !ok || s.hdr < 0 || s.hdr >= len(m.Raw.Hdrs) {
		a.log.Error("consume_credentials: no authorized credentials found (error in script)")
		return Error
	}
	h := m.Raw.Hdrs[s.hdr]
	m.AddEdit(int(h.Start), int(h.End), "")
	s.hdr = -1
	return OK
}

// pvAuthenticate is pv_www_authenticate / pv_proxy_authenticate: the password (flags&1: its HA1) comes
// from the script. Flags 2/4/8 put a challenge (no qop / qop=auth / qop=auth-int) into
// $avp(digest_challenge) when authentication fails; 16 marks it stale; 32 (keep nc on failure) is always
// the behaviour here.
func (a *Auth) pvAuthenticate(m *engine.Msg, realm, passwd string, flags int, hf HF) int {
	res := a.pvAuth(m, realm, passwd, flags, hf)
	return res.Code
}

func (a *Auth) pvAuth(m *engine.Msg, realm, passwd string, flags int, hf HF) Result {
	if passwd == "" {
		a.log.Error("invalid password value: empty")
		return Result{Code: Error}
	}
	lookup := func(u Username, _ string) (Secret, bool, error) {
		if flags&1 == 0 {
			return Secret{Password: passwd}, true, nil
		}
		return Secret{HA1MD5: passwd, HA1SHA256: passwd}, true, nil // the length decides which fits
	}
	res := a.Authenticate(m, realm, hf, lookup)
	if res.Code < 0 && flags&14 != 0 {
		qop := ""
		switch {
		case flags&8 != 0:
			qop = "auth-int"
		case flags&4 != 0:
			qop = "auth"
		}
		if hdrs, ok := a.challengeHeaders(m, realm, qop, flags&16 != 0 || state(m).stale, hf); ok {
			if m.AVPs == nil {
				m.AVPs = map[string][]engine.Value{}
			}
			m.AVPs["digest_challenge"] = append(m.AVPs["digest_challenge"], engine.StrVal(hdrs))
		}
	}
	return res
}

// pvAuthCheck is pv_auth_check(realm, passwd, flags, checks): pv_www_authenticate for REGISTER,
// pv_proxy_authenticate otherwise; checks&1 also requires the auth username to be the From user (To user
// and From == To for REGISTER and PUBLISH, and the R-URI user for PUBLISH) → -8 otherwise.
func (a *Auth) pvAuthCheck(m *engine.Msg, realm, passwd string, flags, checks int) int {
	if m.Request() == nil {
		return Error
	}
	switch m.Method() {
	case "ACK", "CANCEL":
		return OK
	}
	res := a.pvAuth(m, realm, passwd, flags, forMethod(m))
	if res.Code != OK || checks&1 == 0 {
		return res.Code
	}
	if !res.found {
		if m.Method() == "PRACK" {
			return OK
		}
		return Error
	}
	return CheckIdentity(m, res.Username, a.UseDomain, false)
}

// CheckIdentity is Kamailio's auth_check identity check (AUTH_CHECK_ID_F): the auth user must be the To
// user for REGISTER and PUBLISH (From == To too, and for PUBLISH the R-URI), the From user otherwise;
// useDomain compares the hosts as well. skipFwd (auth_check flag 2) skips the user check for INVITE, BYE,
// PRACK, UPDATE and MESSAGE, which may come with an anonymous From.
func CheckIdentity(m *engine.Msg, u Username, useDomain, skipFwd bool) int {
	from := m.Request().From()
	if from == nil {
		return Error
	}
	method := m.Method()
	regOrPub := method == "REGISTER" || method == "PUBLISH"
	uri := from.Address
	if regOrPub {
		to := m.Request().To()
		if to == nil {
			return Error
		}
		uri = to.Address
	}
	skip := false
	if skipFwd {
		switch method {
		case "INVITE", "BYE", "PRACK", "UPDATE", "MESSAGE":
			skip = true
		}
	}
	if !skip && u.User != uri.User {
		return UserMismatch
	}
	if regOrPub {
		if from.Address.User != uri.User {
			return UserMismatch
		}
		if useDomain && !strings.EqualFold(from.Address.Host, uri.Host) {
			return UserMismatch
		}
		if method == "PUBLISH" {
			ru, ok := m.ParsedRURI()
			if !ok {
				return Error
			}
			if from.Address.User != ru.User || (useDomain && !strings.EqualFold(from.Address.Host, ru.Host)) {
				return UserMismatch
			}
		}
	}
	return OK
}

// authChallenge is auth_challenge(realm, flags): www_challenge for REGISTER, proxy_challenge otherwise;
// ACK and CANCEL are not challenged (1).
func (a *Auth) authChallenge(m *engine.Msg, realm string, flags int) int {
	if m.Request() == nil {
		return Error
	}
	switch m.Method() {
	case "ACK", "CANCEL":
		return OK
	}
	return a.Challenge(m, realm, flags, forMethod(m))
}

// Challenge sends 401 (WWW) or 407 (Proxy) with one challenge header per configured algorithm, through the
// request's transaction when tm has one, else statelessly (Kamailio's sl send_reply). Flags as Kamailio:
// 1 qop=auth, 2 qop=auth-int, 4 no automatic 500 on failure, 16 stale=true; without 1 or 2 the qop
// parameter decides. A previous authentication of this request that found an expired nonce makes the
// challenge stale=true as well (RFC 7616 §3.3), so the client retries without asking its user.
// Returns 1, -2 when no challenge could be built (no realm), -3 when the reply could not be sent.
func (a *Auth) Challenge(m *engine.Msg, realm string, flags int, hf HF) int {
	if m.Request() == nil {
		return Error
	}
	qop := a.QOP
	switch {
	case flags&2 != 0:
		qop = "auth-int"
	case flags&1 != 0:
		qop = "auth"
	}
	stale := flags&16 != 0
	if s, ok := m.ModState("auth").(*msgState); ok && s.stale {
		stale = true
	}
	hdrs, ok := a.challengeHeaders(m, realm, qop, stale, hf)
	if !ok {
		a.log.Error("cannot build a challenge: empty realm (no From/To host)")
		if flags&4 == 0 {
			if a.reply(m, 500, "Internal Server Error", "") != nil {
				return -4
			}
		}
		return -2
	}
	code, reason := 401, "Unauthorized"
	if hf == Proxy {
		code, reason = 407, "Proxy Authentication Required"
	}
	if err := a.reply(m, code, reason, hdrs); err != nil {
		a.log.Warn("challenge reply failed", "code", code, "err", err)
		return -3
	}
	return OK
}

// reply sends a local reply with extra header lines through the engine's reply path: tm's transaction when
// there is one (engine.TxReplier, as sl's send_reply), else a stateless reply. The lines are added to the
// message's reply headers only for this reply.
func (a *Auth) reply(m *engine.Msg, code int, reason, hdrs string) error {
	mark := len(m.ReplyHdrs)
	m.ReplyHdrs = append(m.ReplyHdrs, hdrs...)
	defer func() { m.ReplyHdrs = m.ReplyHdrs[:mark] }()
	if tr := m.E.TxReplier(); tr != nil {
		if handled, err := tr.TxReply(m, code, reason); handled {
			return err
		}
	}
	return m.SendReply(code, reason)
}

// challengeHeaders builds `WWW-Authenticate: Digest realm="…", nonce="…"[, qop="…"][, stale=true],
// algorithm=…` CRLF-terminated, one line per algorithm in the configured order (RFC 8760 §2.4: the
// preferred first), sharing one fresh nonce.
func (a *Auth) challengeHeaders(m *engine.Msg, realm, qop string, stale bool, hf HF) (string, bool) {
	realm = Realm(m, realm)
	if realm == "" {
		return "", false
	}
	nonce := a.nonces.make(a.now().Unix() + int64(a.NonceExpire))
	var b strings.Builder
	b.Grow(len(a.algs) * (100 + len(realm)))
	for _, alg := range a.algs {
		b.WriteString(hf.challengeHeader())
		b.WriteString(`: Digest realm="`)
		writeQuoted(&b, realm)
		b.WriteString(`", nonce="`)
		b.WriteString(nonce)
		b.WriteByte('"')
		if qop != "" {
			b.WriteString(`, qop="`)
			b.WriteString(qop)
			b.WriteByte('"')
		}
		if stale {
			b.WriteString(", stale=true")
		}
		b.WriteString(", algorithm=")
		b.WriteString(alg.String())
		b.WriteString("\r\n")
	}
	return b.String(), true
}

// writeQuoted escapes '"' and '\' (RFC 3261 quoted-pair) and drops CR/LF, so a realm taken from a header
// cannot break the reply.
func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
}
