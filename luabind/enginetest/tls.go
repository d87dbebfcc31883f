package enginetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/siplua/siplua/engine"
)

// CA is a certificate authority made for one test: it issues server and client certificates for
// 127.0.0.1 and names, so TLS tests need no files from outside.
type CA struct {
	PEM  string // the CA certificate, for ca_list
	Pool *x509.CertPool
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), Pool: pool, cert: cert, key: key}
}

// Issue makes a certificate for cn (also a DNS name), 127.0.0.1 and the extra names, usable by a server
// and a client; it returns the certificate and key in PEM and as a tls.Certificate.
func (ca *CA) Issue(t testing.TB, cn string, names ...string) (certPEM, keyPEM string, pair tls.Certificate) {
	t.Helper()
	return ca.issue(t, cn, []net.IP{net.IPv4(127, 0, 0, 1)}, names)
}

// IssueName is Issue without the 127.0.0.1 address: the certificate names cn only, so a peer that checks
// it against the address fails and one that checks the name succeeds.
func (ca *CA) IssueName(t testing.TB, cn string) (certPEM, keyPEM string, pair tls.Certificate) {
	t.Helper()
	return ca.issue(t, cn, nil, nil)
}

func (ca *CA) issue(t testing.TB, cn string, ips []net.IP, names []string) (certPEM, keyPEM string, pair tls.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: append([]string{cn}, names...), IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
	pair, err = tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// Addr is the address of the proxy's first listener of proto (invalid when it has none).
func (p *Proxy) Addr(proto engine.Proto) netip.AddrPort {
	for _, l := range p.E.Listeners() {
		if l.Proto == proto {
			return l.Addr
		}
	}
	return netip.AddrPort{}
}

// NewTLSClient connects to raddr over TLS with cfg (its handshake done), as a Client of Proto "TLS".
func NewTLSClient(t testing.TB, raddr netip.AddrPort, cfg *tls.Config) *Client {
	t.Helper()
	c, err := DialTLS(raddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, Proto: "TLS", tcp: c, raddr: raddr, Addr: c.LocalAddr().(*net.TCPAddr).AddrPort()}
}

// DialTLS connects and makes the handshake, within 5 s.
func DialTLS(raddr netip.AddrPort, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", raddr.String(), cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// WSOptions say how NewWSClient connects.
type WSOptions struct {
	TLS       *tls.Config // non-nil: wss
	Path      string      // "/" when empty
	Origin    string      // the Origin header ("" = none)
	Protocols []string    // Sec-WebSocket-Protocol ([]string{"sip"} when nil)
}

// DialWS opens a WebSocket to raddr (the upgrade done); the response status is in the error when refused.
func DialWS(raddr netip.AddrPort, o WSOptions) (net.Conn, error) {
	scheme := "ws"
	if o.TLS != nil {
		scheme = "wss"
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Protocols == nil {
		o.Protocols = []string{"sip"}
	}
	d := ws.Dialer{Protocols: o.Protocols, TLSConfig: o.TLS, Timeout: 5 * time.Second}
	if o.Origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": []string{o.Origin}})
	}
	c, _, _, err := d.Dial(contextTimeout(5*time.Second), scheme+"://"+raddr.String()+o.Path)
	return c, err
}

// NewWSClient connects a WebSocket client (a Client of Proto "WS" or "WSS": Send writes one masked text
// frame per message, Recv reads one message per frame).
func NewWSClient(t testing.TB, raddr netip.AddrPort, o WSOptions) *Client {
	t.Helper()
	c, err := DialWS(raddr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	proto := "WS"
	if o.TLS != nil {
		proto = "WSS"
	}
	return &Client{t: t, Proto: proto, tcp: c, ws: true, raddr: raddr, Addr: c.LocalAddr().(*net.TCPAddr).AddrPort()}
}

func contextTimeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	time.AfterFunc(d, cancel)
	return ctx
}
