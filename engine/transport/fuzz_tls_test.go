package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"
)

func selfSigned(tb testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// FuzzTLSAccept: whatever a peer sends to a tls: or wss: socket, the handshake step ends (refused, within
// the handshake timeout) without a crash, and the connection is not served.
func FuzzTLSAccept(f *testing.F) {
	cert := selfSigned(f)
	f.Add([]byte("OPTIONS sip:a SIP/2.0\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0})
	f.Add([]byte{0x16, 0x03, 0x03, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, proto := range []Proto{TLS, WSS} {
			tr := New(Options{ReadSize: 65535, MaxConns: 4, Lifetime: time.Second, HandshakeTimeout: 200 * time.Millisecond,
				Handle: func([]byte, netip.AddrPort, Proto, *Listener, *Conn) { t.Fatal("garbage served") }})
			st := &TLSState{server: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
			tr.SetTLS(st)
			a, b := net.Pipe()
			tc := &Conn{proto: proto, rw: a, ready: make(chan struct{}), done: make(chan struct{}), tr: tr,
				local: &Listener{Proto: proto}}
			go func() {
				_, _ = b.Write(data)
				_ = b.Close()
			}()
			if tr.handshakeOn(tc, a) {
				t.Fatalf("%s: %q accepted as a handshake", proto, data)
			}
			a.Close()
		}
	})
}
