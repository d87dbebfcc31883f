package kx

import (
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// The rest of Kamailio 5.6's kemix getters. siplua has no #!define preprocessor (get_def is nil, ifdef
// false), no named sockets (get_rcv_sock_name nil) and no per-message forced send socket (get_send_sock*
// nil / 0): a TOML configuration has no such things.

func moreExports() []engine.Export {
	ex := []engine.Export{
		{Name: "get_def", Fn: func(m *engine.Msg, name string) (string, bool) { return "", true }}, // "" as Kamailio
		{Name: "get_defn", Fn: func(m *engine.Msg, name string) int { return 0 }},
		{Name: "ifdef", Fn: func(m *engine.Msg, name string) bool { return false }},
		{Name: "ifndef", Fn: func(m *engine.Msg, name string) bool { return true }},
		{Name: "get_env", Fn: func(m *engine.Msg, name string) (string, bool) { return os.LookupEnv(name) }},
		{Name: "get_envn", Fn: func(m *engine.Msg, name string) int {
			n, _ := strconv.Atoi(strings.TrimSpace(os.Getenv(name)))
			return n
		}},
		{Name: "get_rcv_sock_name", Fn: func(m *engine.Msg) (string, bool) { return "", false }},
		{Name: "get_rcvadvip", Fn: func(m *engine.Msg) (string, bool) {
			h, _ := advertised(m)
			return nonEmpty(h)
		}},
		{Name: "get_rcvadvport", Fn: func(m *engine.Msg) (string, bool) {
			_, p := advertised(m)
			return nonEmpty(p)
		}},
		{Name: "get_send_sock", Fn: func(m *engine.Msg) (string, bool) { return "", false }},
		{Name: "get_send_sock_name", Fn: func(m *engine.Msg) (string, bool) { return "", false }},
		{Name: "get_send_sock_port", Fn: func(m *engine.Msg) int { return 0 }},
	}
	au := authUser
	return append(ex,
		engine.Export{Name: "get_au", Fn: au},
		engine.Export{Name: "gete_au", Fn: func(m *engine.Msg) string { s, _ := au(m); return s }},
		engine.Export{Name: "getw_au", Fn: func(m *engine.Msg) string {
			if s, ok := au(m); ok {
				return s
			}
			return "<null>"
		}},
	)
}

// advertised is the host and port the receiving socket advertises ([core] advertise, else its address):
// Kamailio's $RAi / $RAp.
func advertised(m *engine.Msg) (string, string) {
	if m.Local == nil {
		return "", ""
	}
	h, p, err := net.SplitHostPort(m.Local.SentBy)
	if err != nil {
		return m.Local.SentBy, strconv.Itoa(int(m.Local.Addr.Port()))
	}
	return h, p
}

// authUser is $au: the username of the credentials, Authorization first, then Proxy-Authorization (the
// user part when it is user@domain, as Kamailio's $au).
func authUser(m *engine.Msg) (string, bool) {
	for _, h := range []string{"authorization", "proxy-authorization"} {
		v, ok := m.Header(h)
		if !ok {
			continue
		}
		u, ok := digestParam(v, "username")
		if !ok {
			continue
		}
		if at := strings.IndexByte(u, '@'); at >= 0 {
			u = u[:at]
		}
		return u, true
	}
	return "", false
}

// digestParam reads one parameter of a Digest credentials value.
func digestParam(v, name string) (string, bool) {
	v = strings.TrimSpace(v)
	if sp := strings.IndexAny(v, " \t"); sp >= 0 {
		v = v[sp+1:]
	}
	for len(v) > 0 {
		v = strings.TrimLeft(v, " \t,")
		eq := strings.IndexByte(v, '=')
		if eq < 0 {
			return "", false
		}
		k := strings.TrimSpace(v[:eq])
		v = strings.TrimLeft(v[eq+1:], " \t")
		var val string
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return "", false
			}
			val, v = v[1:1+end], v[2+end:]
		} else {
			end := strings.IndexByte(v, ',')
			if end < 0 {
				end = len(v)
			}
			val, v = strings.TrimSpace(v[:end]), v[end:]
		}
		if strings.EqualFold(k, name) {
			return val, true
		}
	}
	return "", false
}
