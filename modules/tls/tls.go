// Package tls is the script side of Kamailio's tls module: KSR.tls.is_peer_verified, KSR.tls.cget and
// $tls(key) read the TLS state of the connection a message came on. The TLS transport itself (listeners,
// certificates, verification) is the core's [tls] table (engine/transport), not this module: [modules.tls]
// has no parameters.
package tls

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/transport"
)

func init() {
	engine.Register(engine.Module{Name: "tls", New: func() engine.Instance { return &TLS{} }})
}

// TLS has no parameters: certificates and verification are the [tls] table's.
type TLS struct{}

// Exports: KSR.tls.* with Kamailio 5.6's KEMI signatures.
func (*TLS) Exports() []engine.Export {
	return []engine.Export{
		{Name: "is_peer_verified", Fn: isPeerVerified},
		{Name: "cget", Fn: cget},
		{Name: "set_connect_server_id", Fn: setConnectServerID},
	}
}

// PVs: $tls(key), the same keys as KSR.tls.cget.
func (*TLS) PVs() []engine.PV {
	return []engine.PV{{Name: "tls", Get: func(m *engine.Msg, key string) engine.Value { return cget(m, key) }}}
}

// isPeerVerified is Kamailio's is_peer_verified(): 1 when the message came over TLS and the peer presented
// a certificate that was verified (against [tls] ca_list: verify_client for accepted connections,
// verify_server for the proxy's own), -1 otherwise (not TLS, no certificate, or not verified).
func isPeerVerified(m *engine.Msg) int {
	info, ok := m.TLSInfo()
	if !ok || len(info.State.PeerCertificates) == 0 || len(info.State.VerifiedChains) == 0 {
		return -1
	}
	return 1
}

// setConnectServerID is Kamailio's tls_set_connect_server_id(srvid): it selects the client profile
// ([client:...] with server_id) of the next outgoing TLS connection. siplua's [tls] table has one client
// profile, so the id is accepted (1, as Kamailio for any id) and changes nothing.
func setConnectServerID(_ *engine.Msg, srvid string) int { _ = srvid; return 1 }

// cget is KSR.tls.cget(name): an attribute of the TLS connection of the message, null when the message
// did not come over TLS or the name is unknown. Kamailio 5.6 knows the $tls(key) keys m_subject_line,
// p_subject_line, m_issuer_line and p_issuer_line (OpenSSL's one-line form "/C=AT/O=Org/CN=name"); siplua
// also accepts the names of Kamailio's $tls_* variables (tls_version, tls_cipher_info,
// tls_peer_subject_cn, tls_my_issuer, tls_peer_verified, tls_peer_notBefore, tls_peer_server_name ...).
func cget(m *engine.Msg, name string) engine.Value {
	info, ok := m.TLSInfo()
	if !ok {
		return engine.Value{}
	}
	return attr(info, name)
}

var shortKeys = map[string]string{
	"m_subject_line": "tls_my_subject", "p_subject_line": "tls_peer_subject",
	"m_issuer_line": "tls_my_issuer", "p_issuer_line": "tls_peer_issuer",
}

// attr resolves one attribute name against the connection's state.
func attr(info transport.TLSInfo, name string) engine.Value {
	if full, ok := shortKeys[name]; ok {
		name = full
	}
	switch name {
	case "tls_version":
		return engine.StrVal(tlsVersion(info.State.Version))
	case "tls_description":
		return engine.StrVal(tlsVersion(info.State.Version) + " " + tls.CipherSuiteName(info.State.CipherSuite))
	case "tls_cipher_info":
		return engine.StrVal(tls.CipherSuiteName(info.State.CipherSuite))
	case "tls_peer_server_name":
		if info.State.ServerName == "" {
			return engine.Value{}
		}
		return engine.StrVal(info.State.ServerName)
	case "tls_peer_verified":
		return boolVal(len(info.State.PeerCertificates) > 0 && len(info.State.VerifiedChains) > 0)
	}
	rest, ok := strings.CutPrefix(name, "tls_")
	if !ok {
		return engine.Value{}
	}
	var cert *x509.Certificate
	switch {
	case strings.HasPrefix(rest, "peer_"):
		rest = rest[len("peer_"):]
		if len(info.State.PeerCertificates) > 0 {
			cert = info.State.PeerCertificates[0]
		}
	case strings.HasPrefix(rest, "my_"):
		rest = rest[len("my_"):]
		cert = info.Local
	default:
		return engine.Value{}
	}
	if cert == nil {
		return engine.Value{}
	}
	return certAttr(cert, rest)
}

// certAttr is one attribute of a certificate: version, serial, subject/issuer (one line) and their parts,
// the first subjectAltName of a kind, expired, selfsigned, notBefore, notAfter.
func certAttr(c *x509.Certificate, a string) engine.Value {
	switch a {
	case "version":
		return engine.StrVal(strconv.Itoa(c.Version - 1)) // X509_get_version: 0-based (2 = v3), as Kamailio prints it
	case "serial":
		return engine.StrVal(c.SerialNumber.String())
	case "subject":
		return engine.StrVal(oneLine(c.RawSubject))
	case "issuer":
		return engine.StrVal(oneLine(c.RawIssuer))
	case "expired":
		return boolVal(time.Now().After(c.NotAfter))
	case "selfsigned":
		return boolVal(c.CheckSignatureFrom(c) == nil)
	case "notBefore":
		return engine.StrVal(asn1Time(c.NotBefore))
	case "notAfter":
		return engine.StrVal(asn1Time(c.NotAfter))
	case "san_email":
		return first(c.EmailAddresses)
	case "san_hostname":
		return first(c.DNSNames)
	case "san_uri":
		if len(c.URIs) > 0 {
			return engine.StrVal(c.URIs[0].String())
		}
		return engine.Value{}
	case "san_ip":
		if len(c.IPAddresses) > 0 {
			return engine.StrVal(c.IPAddresses[0].String())
		}
		return engine.Value{}
	}
	part, field, ok := strings.Cut(a, "_") // subject_cn, issuer_organization ...
	if !ok {
		return engine.Value{}
	}
	var n pkix.Name
	switch part {
	case "subject":
		n = c.Subject
	case "issuer":
		n = c.Issuer
	default:
		return engine.Value{}
	}
	switch field {
	case "cn":
		if n.CommonName == "" {
			return engine.Value{}
		}
		return engine.StrVal(n.CommonName)
	case "organization":
		return first(n.Organization)
	case "unit":
		return first(n.OrganizationalUnit)
	case "country":
		return first(n.Country)
	case "state":
		return first(n.Province)
	case "locality":
		return first(n.Locality)
	case "uid":
		for _, at := range n.Names {
			if at.Type.Equal(oidUID) {
				if s, ok := at.Value.(string); ok {
					return engine.StrVal(s)
				}
			}
		}
	}
	return engine.Value{}
}

var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// shortNames are OpenSSL's short names of the usual name attributes, as X509_NAME_oneline prints them.
var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.5": "serialNumber", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "title", "2.5.4.9": "street",
	"2.5.4.17": "postalCode", "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1": "UID",
}

// oneLine renders a DER name as OpenSSL's X509_NAME_oneline does: "/C=AT/O=Org/CN=name", in the
// certificate's order.
func oneLine(der []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		return ""
	}
	var b strings.Builder
	for _, rdn := range seq {
		for _, at := range rdn {
			k := shortNames[at.Type.String()]
			if k == "" {
				k = at.Type.String()
			}
			b.WriteString("/" + k + "=")
			switch v := at.Value.(type) {
			case string:
				b.WriteString(v)
			default:
				b.WriteString(strings.Trim(strconv.Quote(toString(v)), `"`))
			}
		}
	}
	return b.String()
}

func toString(v any) string {
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	return ""
}

// asn1Time prints a time as OpenSSL's ASN1_TIME_print: "Jan  2 15:04:05 2006 GMT".
func asn1Time(t time.Time) string { return t.UTC().Format("Jan _2 15:04:05 2006 GMT") }

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return "unknown"
}

func first(s []string) engine.Value {
	if len(s) == 0 {
		return engine.Value{}
	}
	return engine.StrVal(s[0])
}

func boolVal(b bool) engine.Value {
	if b {
		return engine.IntVal(1)
	}
	return engine.IntVal(0)
}
