package enginetest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const registrarScript = `
function ksr_request_route()
	if KSR.is_method("REGISTER") then
		KSR.sl.sl_send_reply(404, "No registrar")
		KSR.x.exit()
	end
	KSR.sl.sl_send_reply(200, "OK")
end`

// stillServes checks that the proxy answers a valid REGISTER on a fresh client after bad input.
func stillServes(t *testing.T, p *enginetest.Proxy, proto string) {
	t.Helper()
	c := p.UDPClient(t)
	if proto == "TCP" {
		c = p.TCPClient(t)
	}
	c.Send(c.Request("REGISTER", "sip:127.0.0.1"))
	if r := c.RecvResponse(2 * time.Second); r.StatusCode != 404 {
		t.Fatalf("after bad input: REGISTER got %d %s", r.StatusCode, r.Reason)
	}
}

// headers is a request from c with the named header lines replaced (an empty value removes the header).
func headers(c *enginetest.Client, method string, replace map[string]string) string {
	req := c.Request(method, "sip:127.0.0.1")
	var out []string
	for _, l := range strings.Split(req, "\r\n") {
		name, _, _ := strings.Cut(l, ":")
		if v, ok := replace[name]; ok {
			if v != "" {
				out = append(out, v)
			}
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// TestMalformedUDP sends bad datagrams: those with a usable Via get 400 with received/rport, the others are
// dropped, and the proxy keeps serving.
func TestMalformedUDP(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", registrarScript)
	tests := []struct {
		name   string
		msg    func(c *enginetest.Client) string
		status int // 0: dropped, no answer
	}{
		{"garbage", func(*enginetest.Client) string { return "\x00\xffhello, this is not SIP\r\n\x01\x02" }, 0},
		{"binary noise with CRLFCRLF", func(*enginetest.Client) string { return "\xde\xad\xbe\xef\r\n\r\n\x00\x00" }, 0},
		{"only a start line", func(*enginetest.Client) string { return "INVITE sip:x SIP/2.0\r\n\r\n" }, 0},
		{"missing Via", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"Via": ""})
		}, 0},
		{"missing Call-ID", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"Call-ID": ""})
		}, 400},
		{"missing From", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"From": ""})
		}, 400},
		{"broken CSeq", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"CSeq": "CSeq: one OPTIONS"})
		}, 400},
		{"header line without a colon", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"Max-Forwards": "Max-Forwards 70"})
		}, 0},
		{"bad request line", func(c *enginetest.Client) string {
			return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), "OPTIONS sip:127.0.0.1 SIP/2.0", "OPTIONS", 1)
		}, 400},
		{"Content-Length beyond the datagram", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"Content-Length": "Content-Length: 500"})
		}, 400},
		{"negative Content-Length", func(c *enginetest.Client) string {
			return headers(c, "OPTIONS", map[string]string{"Content-Length": "Content-Length: -5"})
		}, 400},
		{"garbage reply", func(*enginetest.Client) string { return "SIP/2.0 abc\r\nVia: x\r\n\r\n" }, 0},
		{"reply without our Via", func(c *enginetest.Client) string {
			return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := p.UDPClient(t)
			c.Send(tt.msg(c))
			b, err := c.TryRecv(300 * time.Millisecond)
			switch {
			case tt.status == 0 && err == nil:
				t.Errorf("expected a drop, got %q", b)
			case tt.status != 0 && err != nil:
				t.Errorf("expected %d, got nothing: %v", tt.status, err)
			case tt.status != 0:
				want := fmt.Sprintf("SIP/2.0 %d ", tt.status)
				if !strings.HasPrefix(string(b), want) {
					t.Errorf("expected %q..., got %q", want, b)
				}
				via, _, _ := strings.Cut(strings.SplitN(string(b), "\r\n", 3)[1], "\r\n")
				for _, param := range []string{fmt.Sprintf(";rport=%d", c.Addr.Port()), ";received=127.0.0.1"} {
					if !strings.HasPrefix(via, "Via: ") || !strings.Contains(via, param) {
						t.Errorf("reply Via %q lacks %q", via, param)
					}
				}
			}
			stillServes(t, p, "UDP")
		})
	}
}

// TestMalformedTCP sends truncated and oversize messages on TCP streams: the connection is closed or left to
// time out, nothing crashes, and new connections are served.
func TestMalformedTCP(t *testing.T) {
	p := enginetest.Start(t, "[core]\nudp_read_size = 4096\n[modules.sl]\n", registrarScript)
	dial := func(t *testing.T) net.Conn {
		c, err := net.DialTimeout("tcp", p.TCP.String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	builder := p.TCPClient(t) // builds well-formed requests whose Content-Length is then replaced
	register := func(_ net.Conn, contentLength string) string {
		return strings.Replace(builder.Request("REGISTER", "sip:127.0.0.1"), "Content-Length: 0\r\n", contentLength, 1)
	}
	t.Run("truncated body then close", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, register(c, "Content-Length: 100\r\n")+"only a little")
		c.(*net.TCPConn).CloseWrite()
		expectClosed(t, c)
		stillServes(t, p, "TCP")
	})
	t.Run("truncated headers then close", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt\r\nFrom: <sip:a@x>;ta")
		c.(*net.TCPConn).CloseWrite()
		expectClosed(t, c)
		stillServes(t, p, "TCP")
	})
	t.Run("truncated body, connection left open", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, register(c, "Content-Length: 100\r\n")+"partial")
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 100)); err == nil {
			t.Errorf("answer to an incomplete message: %d bytes", n)
		}
		stillServes(t, p, "TCP")
	})
	t.Run("oversize Content-Length", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, register(c, "Content-Length: 99999999\r\n"))
		expectClosed(t, c)
		stillServes(t, p, "TCP")
	})
	t.Run("overflowing Content-Length", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, register(c, "Content-Length: 99999999999999999999999\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.ReadAll(c) // a 400 or a close; either way no crash
		stillServes(t, p, "TCP")
	})
	t.Run("endless header line", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, "REGISTER sip:127.0.0.1 SIP/2.0\r\nX-Long: "+strings.Repeat("a", 64<<10))
		expectClosed(t, c)
		stillServes(t, p, "TCP")
	})
	t.Run("garbage then valid on another connection", func(t *testing.T) {
		c := dial(t)
		fmt.Fprint(c, "\x00\x01\x02 not sip at all\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if b, err := io.ReadAll(c); len(b) > 0 && !isTimeout(err) {
			t.Logf("answer to garbage: %q", b)
		}
		stillServes(t, p, "TCP")
	})
}

// expectClosed waits for the proxy to close the connection, without any answer.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatalf("connection not closed by the proxy within 2s")
	}
	if len(b) > 0 {
		t.Errorf("unexpected answer before close: %q", b)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
