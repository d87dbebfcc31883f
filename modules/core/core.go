// Package core provides Kamailio's core KEMI functions, exported directly in KSR (KSR.is_method, KSR.forward…).
package core

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func init() {
	engine.Register(engine.Module{Name: "core", Builtin: true, TopLevel: true, New: func() engine.Instance { return &Core{} }})
}

// Core has no parameters.
type Core struct {
	log *slog.Logger
}

// Start keeps the logger for KSR.info and friends.
func (c *Core) Start(env *engine.Env) error {
	c.log = env.Log.With("module", "script")
	return nil
}

func (c *Core) logger() *slog.Logger {
	if c.log == nil {
		return slog.Default()
	}
	return c.log
}

// Exports lists KSR.* core functions with Kamailio's return types (bool for checks, int for actions).
func (c *Core) Exports() []engine.Export {
	ex := []engine.Export{
		{Name: "is_method", Fn: isMethod},
		{Name: "is_method_in", Fn: isMethodIn},
		{Name: "dbg", Fn: c.logFn(slog.LevelDebug)},
		{Name: "info", Fn: c.logFn(slog.LevelInfo)},
		{Name: "notice", Fn: c.logFn(slog.LevelInfo)},
		{Name: "warn", Fn: c.logFn(slog.LevelWarn)},
		{Name: "err", Fn: c.logFn(slog.LevelError)},
		{Name: "crit", Fn: c.logFn(slog.LevelError)},
		{Name: "log", Fn: c.logLevel},
		{Name: "setflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.Flags, f, true) }},
		{Name: "resetflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.Flags, f, false) }},
		{Name: "isflagset", Fn: func(m *engine.Msg, f int) bool { return isBit(m.Flags, f) }},
		{Name: "setbflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.BFlags, f, true) }},
		{Name: "resetbflag", Fn: func(m *engine.Msg, f int) bool { return setBit(&m.BFlags, f, false) }},
		{Name: "isbflagset", Fn: func(m *engine.Msg, f int) bool { return isBit(m.BFlags, f) }},
		{Name: "force_rport", Fn: func(m *engine.Msg) bool { m.ForceRport = true; return true }},
		{Name: "is_myself", Fn: func(m *engine.Msg, uri string) bool { return isMyselfURI(m, uri) }},
		{Name: "is_myself_ruri", Fn: func(m *engine.Msg) bool { return m.IsRequest() && isMyselfURI(m, m.RURI()) }},
		{Name: "is_myself_furi", Fn: fromMyself},
		{Name: "is_myself_turi", Fn: toMyself},
		{Name: "is_myself_srcip", Fn: func(m *engine.Msg) bool { return m.E.IsMyselfAddr(m.Src.Addr()) }},
		{Name: "forward", Fn: func(m *engine.Msg) int { return c.forward(m, "") }},
		{Name: "forward_uri", Fn: func(m *engine.Msg, uri string) int { return c.forward(m, uri) }},
		{Name: "seturi", Fn: setURI},
		{Name: "setuser", Fn: setUser},
		{Name: "sethost", Fn: setHost},
		{Name: "setdsturi", Fn: func(m *engine.Msg, uri string) bool { m.DstURI = uri; return true }},
		{Name: "resetdsturi", Fn: func(m *engine.Msg) bool { m.DstURI = ""; return true }},
		{Name: "isdsturiset", Fn: func(m *engine.Msg) bool { return m.DstURI != "" }},
		{Name: "drop", Fn: func(m *engine.Msg) int { m.Dropped = true; return 0 }},
		{Name: "set_drop", Fn: func(m *engine.Msg) { m.Dropped = true }},
		{Name: "set_reply_no_connect", Fn: func(m *engine.Msg) bool { m.ReplyNoConnect = true; return true }},
	}
	for _, meth := range []string{"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE",
		"NOTIFY", "PUBLISH", "MESSAGE", "INFO", "UPDATE", "PRACK", "REFER", "KDMQ"} {
		meth := meth
		// Kamailio parses the method name case-insensitively into its method id: "invite" is INVITE
		ex = append(ex, engine.Export{Name: "is_" + meth, Fn: func(m *engine.Msg) bool { return strings.EqualFold(m.Method(), meth) }})
	}
	ex = append(ex, transportExports()...)
	return append(ex, c.moreExports()...) // more.go
}

// isMethod is Kamailio's is_method: the method, or one of a "|"-separated list, case-insensitively.
func isMethod(m *engine.Msg, meth string) bool {
	got := m.Method()
	for meth != "" {
		one, rest, _ := strings.Cut(meth, "|")
		if strings.EqualFold(got, strings.TrimSpace(one)) {
			return true
		}
		meth = rest
	}
	return false
}

// methodLetters are Kamailio's is_method_in letters.
var methodLetters = map[byte]string{
	'I': "INVITE", 'A': "ACK", 'B': "BYE", 'C': "CANCEL", 'R': "REGISTER", 'M': "MESSAGE", 'O': "OPTIONS",
	'S': "SUBSCRIBE", 'P': "PUBLISH", 'N': "NOTIFY", 'U': "UPDATE", 'K': "KDMQ", 'G': "GET", 'T': "POST",
	'V': "PUT", 'D': "DELETE",
}

func isMethodIn(m *engine.Msg, letters string) bool {
	meth := m.Method()
	for i := 0; i < len(letters); i++ {
		c := letters[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if strings.EqualFold(methodLetters[c], meth) {
			return true
		}
	}
	return false
}

func (c *Core) logFn(level slog.Level) func(*engine.Msg, string) {
	return func(m *engine.Msg, s string) {
		c.logger().Log(nil, level, strings.TrimRight(s, "\r\n"))
	}
}

func (c *Core) logLevel(m *engine.Msg, level, s string) {
	l := slog.LevelError // Kamailio: an unknown level logs as err
	switch strings.ToLower(level) {
	case "dbg", "debug":
		l = slog.LevelDebug
	case "info", "notice":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	}
	c.logger().Log(nil, l, strings.TrimRight(s, "\r\n"))
}

// maxFlag is Kamailio's MAX_FLAG: message and branch flags are 32 bits; setflag(32) fails there.
const maxFlag = 31

func setBit(flags *uint64, f int, on bool) bool {
	if f < 0 || f > maxFlag {
		return false
	}
	if on {
		*flags |= 1 << uint(f)
	} else {
		*flags &^= 1 << uint(f)
	}
	return true
}

func isBit(flags uint64, f int) bool { return f >= 0 && f <= maxFlag && flags&(1<<uint(f)) != 0 }

// isMyselfURI is Kamailio's is_myself: a "sip:"/"sips:" URI is parsed and its host, port (none: any port we
// listen on) and ;transport= checked against our sockets and aliases; anything else is taken as a bare host.
func isMyselfURI(m *engine.Msg, uri string) bool {
	if len(uri) > 4 && (strings.HasPrefix(uri, "sip:") || strings.HasPrefix(uri, "sips:")) {
		u, ok := rawsip.ParseURI(uri)
		if !ok || u.Host == "" {
			return false
		}
		port := 0
		if u.Port != "" {
			p, err := strconv.Atoi(u.Port)
			if err != nil {
				return false
			}
			port = p
		}
		tr, _, _, _ := rawsip.Param(u.Params, "transport")
		return m.E.IsMyselfOn(u.Host, port, tr)
	}
	return uri != "" && m.E.IsMyselfOn(uri, 0, "")
}

// fromMyself and toMyself check the From/To URI as is_myself does.
func fromMyself(m *engine.Msg) bool { return addrMyself(m, "from") }

func toMyself(m *engine.Msg) bool { return addrMyself(m, "to") }

func addrMyself(m *engine.Msg, name string) bool {
	v, ok := m.Header(name)
	if !ok {
		return false
	}
	_, uri, _, ok := rawsip.NameAddr(v)
	return ok && isMyselfURI(m, uri)
}

func (c *Core) forward(m *engine.Msg, uri string) int {
	if err := m.Forward(uri); err != nil {
		c.logger().Warn("forward failed", "err", err)
		return -1
	}
	return 1
}

// setURI is seturi: as Kamailio's rewrite_uri, the text is taken as given, without parsing (a URI that
// does not parse reads as null in $ru and makes t_relay fail). Only an empty text and CR/LF, which would
// break the request line, are refused.
func setURI(m *engine.Msg, uri string) bool {
	if !m.IsRequest() || uri == "" || strings.ContainsAny(uri, "\r\n") {
		return false
	}
	m.NewURI = uri
	return true
}

func setUser(m *engine.Msg, user string) bool { return rewriteRURI(m, rawsip.URIUser, user) }

func setHost(m *engine.Msg, host string) bool { return rewriteRURI(m, rawsip.URIHost, host) }

// rewriteRURI sets the user or the host of the R-URI as Kamailio's SET_USER_T/SET_HOST_T actions do
// (rawsip.RewriteURI): setting the host of a tel: URI makes it sip:NUMBER@HOST;user=phone.
func rewriteRURI(m *engine.Msg, part rawsip.URIPart, val string) bool {
	if !m.IsRequest() {
		return false
	}
	uri, ok := rawsip.RewriteURI(m.RURI(), part, val)
	if !ok {
		return false
	}
	m.NewURI = uri
	return true
}
