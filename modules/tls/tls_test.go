package tls_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// startTLS runs EvalScript with a TLS listener whose certificate is sip.example's (issued by ca); extra is
// added to the [tls] table.
func startTLS(t *testing.T, ca *enginetest.CA, extra string) *enginetest.Proxy {
	t.Helper()
	cert, key, _ := ca.Issue(t, "sip.example")
	files := map[string]string{"script.lua": enginetest.EvalScript, "cert.pem": cert, "key.pem": key, "ca.pem": ca.PEM}
	cfg := "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\"]\n[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\nca_list = \"ca.pem\"\n" +
		extra + "[modules.sl]\n[modules.tls]\n"
	return enginetest.StartFiles(t, cfg, files)
}

var exprs = []string{
	"KSR.tls.is_peer_verified()",
	"KSR.tls.cget('p_subject_line')",
	"KSR.tls.cget('p_issuer_line')",
	"KSR.tls.cget('m_subject_line')",
	"KSR.tls.cget('m_issuer_line')",
	"KSR.tls.cget('tls_peer_subject_cn')",
	"KSR.tls.cget('tls_my_subject_cn')",
	"KSR.tls.cget('tls_peer_verified')",
	"KSR.tls.cget('tls_version')",
	"KSR.tls.cget('tls_peer_version')",
	"KSR.tls.cget('tls_peer_san_hostname')",
	"KSR.tls.cget('tls_peer_server_name')",
	"KSR.tls.cget('no_such_key')",
	"KSR.pv.get('$tls(p_subject_line)')",
	"KSR.tls.set_connect_server_id('srv1')",
}

// TestTLSPeer: what a route sees of the TLS connection a request came on, with a verified client
// certificate, without one, and over UDP.
func TestTLSPeer(t *testing.T) {
	ca := enginetest.NewCA(t, "Test CA")
	_, _, alice := ca.Issue(t, "alice.example")
	for _, tc := range []struct {
		name   string
		extra  string // [tls] keys
		client *tls.Config
		udp    bool
		want   []string
	}{
		{"verified client certificate", "verify_client = true\n",
			&tls.Config{RootCAs: ca.Pool, ServerName: "sip.example", Certificates: []tls.Certificate{alice}, MaxVersion: tls.VersionTLS13},
			false, []string{"number:1", "string:/CN=alice.example", "string:/CN=Test CA", "string:/CN=sip.example", "string:/CN=Test CA",
				"string:alice.example", "string:sip.example", "number:1", "string:TLSv1.3", "string:2", "string:alice.example",
				"string:sip.example", "nil:nil", "string:/CN=alice.example", "number:1"}},
		{"no client certificate asked", "",
			&tls.Config{RootCAs: ca.Pool, ServerName: "sip.example", Certificates: []tls.Certificate{alice}, MaxVersion: tls.VersionTLS12},
			false, []string{"number:-1", "nil:nil", "nil:nil", "string:/CN=sip.example", "string:/CN=Test CA",
				"nil:nil", "string:sip.example", "number:0", "string:TLSv1.2", "nil:nil", "nil:nil",
				"string:sip.example", "nil:nil", "nil:nil", "number:1"}},
		{"udp", "", nil, true, []string{"number:-1", "nil:nil", "nil:nil", "nil:nil", "nil:nil",
			"nil:nil", "nil:nil", "nil:nil", "nil:nil", "nil:nil", "nil:nil",
			"nil:nil", "nil:nil", "nil:nil", "number:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startTLS(t, ca, tc.extra)
			var c *enginetest.Client
			if tc.udp {
				c = p.UDPClient(t)
			} else {
				c = enginetest.NewTLSClient(t, p.Addr(engine.TLS), tc.client)
			}
			got := c.Eval("OPTIONS", "sip:x@sip.example", nil, exprs...)
			for i := range exprs {
				if got[i] != tc.want[i] {
					t.Errorf("%s = %q, want %q", exprs[i], got[i], tc.want[i])
				}
			}
		})
	}
}

// TestOneLine: the subject line keeps the certificate's order and OpenSSL's short names.
func TestOneLineNotBefore(t *testing.T) {
	ca := enginetest.NewCA(t, "Test CA")
	p := startTLS(t, ca, "")
	c := enginetest.NewTLSClient(t, p.Addr(engine.TLS), &tls.Config{RootCAs: ca.Pool, ServerName: "sip.example"})
	got := c.Eval("OPTIONS", "sip:x@sip.example", nil, "KSR.tls.cget('tls_my_notAfter')", "KSR.tls.cget('tls_cipher_info')")
	if !strings.HasSuffix(got[0], " GMT") || !strings.HasPrefix(got[1], "string:TLS_") {
		t.Errorf("notAfter %q, cipher %q", got[0], got[1])
	}
}
