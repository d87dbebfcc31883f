package rawsip

import "strings"

// URIPart names the part of a URI RewriteURI sets.
type URIPart uint8

const (
	URIUser URIPart = iota
	URIHost
	URIPort
)

// RewriteURI sets the user, host or port of uri (val "" removes a user or a port) and rebuilds it as
// Kamailio's SET_USER/SET_HOST/SET_PORT actions do (core/action.c), so that KSR.setuser, KSR.sethost and
// $rU/$rd/$rp give the same URI as Kamailio:
//   - the scheme is written in lower case; a tel: URI whose host is set becomes sip:NUMBER@HOST;user=phone;
//   - a sip: URI with user=phone is a phone number (Kamailio's phone2tel): its user is the number and the
//     ;parameters after it, which are kept after the (new) number;
//   - the port of a tel: URI cannot be set (false);
//   - the password is kept only while there is a user; parameters and headers are kept.
//
// It returns false when uri is not a sip:, sips:, tel: or tels: URI that parses.
func RewriteURI(uri string, part URIPart, val string) (string, bool) {
	u, ok := ParseURI(uri)
	if !ok {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	tel := scheme == "tel" || scheme == "tels"
	userPhone := false
	if !tel {
		if v, _, _, ok := Param(u.Params, "user"); ok && v == "phone" {
			userPhone = true
		}
	}
	user, telParams, sipParams := u.User, "", u.Params
	switch {
	case tel:
		telParams, sipParams = u.Params, ""
	case userPhone:
		if i := strings.IndexByte(user, ';'); i >= 0 {
			user, telParams = user[:i], user[i:]
		}
	}
	if part == URIPort && tel {
		return "", false
	}
	if tel && part == URIHost {
		scheme = strings.TrimPrefix(scheme, "tel") // "tel" → "", "tels" → "s"
		scheme = "sip" + scheme
	}
	var b strings.Builder
	b.Grow(len(uri) + len(val) + 12)
	b.WriteString(scheme)
	b.WriteByte(':')
	if part == URIUser {
		user = val
	}
	b.WriteString(user)
	if user != "" && u.HasPass {
		b.WriteByte(':')
		b.WriteString(u.Password)
	}
	b.WriteString(telParams)
	host := u.Host
	switch {
	case part == URIHost:
		host = val
	case tel:
		host = ""
	}
	if host != "" {
		if user != "" {
			b.WriteByte('@')
		}
		b.WriteString(host)
	}
	port := u.Port
	if part == URIPort {
		port = val
	}
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(sipParams)
	if tel && part == URIHost {
		b.WriteString(";user=phone")
	}
	b.WriteString(u.Headers)
	return b.String(), true
}
