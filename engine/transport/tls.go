package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// TLSSettings are the [tls] table's values, paths resolved.
type TLSSettings struct {
	Certificate  string // PEM certificate chain of the default server (and client) certificate
	PrivateKey   string // its PEM private key
	CAList       string // PEM CA certificates that verify clients (verify_client) and servers; "" = system roots for servers
	VerifyClient bool   // ask for and verify a client certificate on accepted connections
	MinVersion   uint16 // tls.VersionTLS12 ...
	Servers      []TLSServer
	// Outgoing connections: VerifyServer checks the server's certificate against CAList (or the system
	// roots) and ServerName ("" = the destination's host as dialled).
	VerifyServer bool
	ServerName   string
}

// TLSServer is one [[tls.server]] entry: the certificate served to clients asking for ServerName (SNI).
type TLSServer struct {
	ServerName  string
	Certificate string
	PrivateKey  string
}

// TLSState is a loaded TLS configuration: the server and client tls.Configs built from TLSSettings. A
// reload swaps the whole state at once (Transport.SetTLS), so a handshake sees either the old certificates
// or the new ones.
type TLSState struct {
	server *tls.Config
	client *tls.Config
	verify bool
	sni    map[string]*tls.Certificate // lower-case server name -> certificate
	def    *tls.Certificate
}

// LoadTLS reads the certificates and keys s names.
func LoadTLS(s TLSSettings) (*TLSState, error) {
	st := &TLSState{sni: map[string]*tls.Certificate{}, verify: s.VerifyServer}
	if s.Certificate == "" || s.PrivateKey == "" {
		return nil, errors.New("tls: certificate and private_key are required for tls and wss listeners")
	}
	c, err := tls.LoadX509KeyPair(s.Certificate, s.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s / private_key %s: %w", s.Certificate, s.PrivateKey, err)
	}
	st.def = &c
	for _, sv := range s.Servers {
		c, err := tls.LoadX509KeyPair(sv.Certificate, sv.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("tls: server %q: certificate %s / private_key %s: %w", sv.ServerName, sv.Certificate, sv.PrivateKey, err)
		}
		st.sni[strings.ToLower(sv.ServerName)] = &c
	}
	var pool *x509.CertPool
	if s.CAList != "" {
		pem, err := os.ReadFile(s.CAList)
		if err != nil {
			return nil, fmt.Errorf("tls: ca_list: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca_list %s: no PEM certificate in it", s.CAList)
		}
	}
	if s.VerifyClient && pool == nil {
		return nil, errors.New("tls: verify_client needs ca_list (the CAs that sign client certificates)")
	}
	minv := s.MinVersion
	if minv == 0 {
		minv = tls.VersionTLS12
	}
	st.server = &tls.Config{
		MinVersion: minv,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := st.sni[strings.ToLower(h.ServerName)]; c != nil {
				return c, nil
			}
			return st.def, nil
		},
		ClientCAs: pool,
	}
	if s.VerifyClient {
		st.server.ClientAuth = tls.RequireAndVerifyClientCert
	}
	st.client = &tls.Config{
		MinVersion:         minv,
		RootCAs:            pool,
		ServerName:         s.ServerName,
		InsecureSkipVerify: !s.VerifyServer,
		Certificates:       []tls.Certificate{c},
	}
	return st, nil
}

// SetTLS installs the TLS certificates and settings new handshakes use (at start and on reload).
func (t *Transport) SetTLS(st *TLSState) { t.tls.Store(st) }

// serverTLS is the configuration of an accepted connection's handshake: GetConfigForClient reads the
// current state, so a reload applies to the next handshake without touching the listener.
func (t *Transport) serverTLS() *tls.Config {
	t.srvOnce.Do(func() {
		t.srvCfg = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := t.tls.Load()
			if st == nil {
				return nil, errors.New("no [tls] certificate configured")
			}
			return st.server, nil
		}}
	})
	return t.srvCfg // one for every connection: it holds no per-connection state
}

// NoteServerName records that dst was resolved from the name host (RFC 3263): an outgoing TLS connection
// to dst sends it as SNI and checks the certificate against it (RFC 5922), not against the address.
func (t *Transport) NoteServerName(dst netip.AddrPort, host string) {
	if _, err := netip.ParseAddr(host); err == nil {
		return // an address names itself
	}
	t.namesMu.Lock()
	if t.names == nil || len(t.names) >= 4096 { // bounded: names are refreshed by every resolution
		t.names = map[netip.AddrPort]string{}
	}
	t.names[dst] = host
	t.namesMu.Unlock()
}

// clientTLS is the configuration of an outgoing handshake to dst: [tls] server_name, else the name dst
// was resolved from, else its address.
func (t *Transport) clientTLS(dst netip.AddrPort) (*tls.Config, error) {
	st := t.tls.Load()
	if st == nil {
		return nil, errors.New("no [tls] configured")
	}
	c := st.client.Clone()
	if c.ServerName == "" {
		t.namesMu.Lock()
		c.ServerName = t.names[dst]
		t.namesMu.Unlock()
	}
	if c.ServerName == "" {
		c.ServerName = dst.Addr().String()
	}
	return c, nil
}

// tlsAlert names a handshake failure for the log: what the peer or the verification said.
func tlsAlert(err error) string {
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var re tls.RecordHeaderError
	var ne net.Error
	switch {
	case errors.As(err, &ue):
		return "certificate signed by an unknown authority"
	case errors.As(err, &he):
		return "certificate does not name the host"
	case errors.As(err, &ce):
		return "certificate invalid"
	case errors.As(err, &re):
		return "not a TLS client"
	case errors.As(err, &ne) && ne.Timeout():
		return "handshake timeout"
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		return "no client certificate (verify_client)"
	}
	return "handshake failed"
}
