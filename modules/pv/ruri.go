package pv

import (
	"errors"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

var (
	errNotRequest = errors.New("not a request")
	errNeedStr    = errors.New("a string value is required")
	errBadURI     = errors.New("the Request-URI does not parse")
	errNull       = errors.New("cannot be unset")
)

// getRURI is $ru: the current Request-URI, null on a reply or when a rewrite left an unparsable URI.
func getRURI(m *engine.Msg, _ string) engine.Value {
	if !m.IsRequest() { // raw: $ru and friends never need sipgo's full parse
		return engine.Value{}
	}
	s := m.RURI()
	if _, ok := rawsip.ParseURI(s); !ok {
		return engine.Value{}
	}
	return engine.StrVal(s)
}

func getOrigURI(m *engine.Msg, _ string) engine.Value {
	if !m.IsRequest() {
		return engine.Value{}
	}
	if s, e, ok := rawsip.RequestURI(m.Buf, &m.Raw); ok {
		return engine.StrVal(string(m.Buf[s:e]))
	}
	return engine.Value{}
}

func currentRURI(m *engine.Msg) (rawsip.URI, bool) {
	if !m.IsRequest() {
		return rawsip.URI{}, false
	}
	return rawsip.ParseURI(m.RURI())
}

// ruriUser is $rU: the user part; for a tel URI or a sip: URI with user=phone, the number without its
// ;parameters, as Kamailio's parse_uri separates them.
func ruriUser(u rawsip.URI) string {
	if s := uriScheme(u); s == "tel" || s == "tels" {
		user, _, _ := strings.Cut(u.User, ";")
		return user
	}
	return u.User
}

func ruriPart(part func(rawsip.URI) string) func(*engine.Msg, string) engine.Value {
	return func(m *engine.Msg, _ string) engine.Value {
		u, ok := currentRURI(m)
		if !ok {
			return engine.Value{}
		}
		return strOrNull(part(u))
	}
}

// getRURIPort is $rp: the port as written, "5060" when the URI has none (a string, as in Kamailio).
func getRURIPort(m *engine.Msg, _ string) engine.Value {
	u, ok := currentRURI(m)
	if !ok {
		return engine.Value{}
	}
	if u.Port == "" {
		return engine.StrVal("5060")
	}
	return engine.StrVal(u.Port)
}

// validText rejects what would break the request line when the URI is written out.
func validText(s string) bool { return s != "" && !strings.ContainsAny(s, " \t\r\n") }

func setRURI(m *engine.Msg, _ string, v engine.Value) error {
	if !m.IsRequest() {
		return errNotRequest
	}
	switch {
	case v.Kind == engine.Null:
		return errNull
	case v.Kind != engine.Str:
		return errNeedStr
	case v.S == "" || strings.ContainsAny(v.S, "\r\n"):
		return errors.New("invalid URI text")
	}
	m.NewURI = v.S // unparsed, as Kamailio's SET_URI_T: $ru then reads null and t_relay fails
	return nil
}

// setRURIPart rewrites one part of the current Request-URI as Kamailio's SET_USER/SET_HOST/SET_PORT do
// (rawsip.RewriteURI: lower-case scheme, tel: URIs and user=phone as Kamailio). check validates the value on
// a scratch URI (the same checks as the From/To parts).
func setRURIPart(part rawsip.URIPart, check func(u *rawsip.URI, v engine.Value) error) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, _ string, v engine.Value) error {
		if !m.IsRequest() {
			return errNotRequest
		}
		var scratch rawsip.URI
		if err := check(&scratch, v); err != nil {
			return err
		}
		val := scratch.User
		switch part {
		case rawsip.URIHost:
			val = scratch.Host
		case rawsip.URIPort:
			val = scratch.Port
		}
		uri, ok := rawsip.RewriteURI(m.RURI(), part, val)
		if !ok {
			return errBadURI
		}
		m.NewURI = uri
		return nil
	}
}

// setUser: unset (or "") removes the user part, as Kamailio's SET_USER_T with an empty value.
func setUser(u *rawsip.URI, v engine.Value) error {
	s := ""
	if v.Kind != engine.Null {
		s = v.String()
	}
	if strings.ContainsAny(s, " \t\r\n@") {
		return errors.New("invalid user")
	}
	u.User = s
	if s == "" {
		u.Password, u.HasPass = "", false
	}
	return nil
}

func setHost(u *rawsip.URI, v engine.Value) error {
	if v.Kind == engine.Null {
		return errNull
	}
	s := v.String()
	if !validText(s) || strings.ContainsAny(s, "@;?") {
		return errors.New("invalid host")
	}
	u.Host = s
	return nil
}

// setPort: unset removes the port; a value must be a port number.
func setPort(u *rawsip.URI, v engine.Value) error {
	if v.Kind == engine.Null {
		u.Port = ""
		return nil
	}
	s := v.String()
	if n, err := strconv.Atoi(s); err != nil || n < 0 || n > 65535 {
		return errors.New("invalid port")
	}
	u.Port = s
	return nil
}

// setDstURI is $du: unset clears it, as KSR.resetdsturi.
func setDstURI(m *engine.Msg, _ string, v engine.Value) error {
	switch {
	case v.Kind == engine.Null:
		m.DstURI = ""
		return nil
	case v.Kind != engine.Str:
		return errNeedStr
	case !validText(v.S):
		return errors.New("invalid URI text")
	}
	m.DstURI = v.S
	return nil
}
