package textops_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestBodyLengthOnTCP: a request that arrives over UDP without Content-Length and leaves over TCP gets one
// Content-Length (the engine adds it for stream transports): the length of the body as changed by
// textops, and not a second header when set_body already added one.
func TestBodyLengthOnTCP(t *testing.T) {
	uas := enginetest.StartUAS(t, true, func(string) int { return 0 })
	p := enginetest.Start(t, "[modules.sl]\n[modules.textops]\n", fmt.Sprintf(`
function ksr_request_route()
	local c = KSR.hdr.get("X-Case")
	if c == "set_body" then KSR.textops.set_body("new body", "text/plain") end
	if c == "replace_body" then KSR.textops.replace_body("hello", "hello world") end
	KSR.forward_uri("sip:%s;transport=tcp")
end`, uas.Addr))
	c := p.UDPClient(t)
	for _, tc := range []struct {
		name, wantCL, wantBody string
	}{
		{"set_body", "Content-Length: 8\r\n", "new body"},
		{"replace_body", "Content-Length: 13\r\n", "hello world\r\n"},
	} {
		req := c.Request("MESSAGE", "sip:bob@127.0.0.1", "X-Case: "+tc.name, "Content-Type: text/plain")
		// no Content-Length over UDP: the body runs to the end of the datagram
		head, _, _ := strings.Cut(req, "\r\n\r\n")
		var lines []string
		for _, l := range strings.Split(head, "\r\n") {
			if !strings.HasPrefix(strings.ToLower(l), "content-length") {
				lines = append(lines, l)
			}
		}
		c.Send(strings.Join(lines, "\r\n") + "\r\n\r\nhello\r\n")
		got := uas.Next(t, 3*time.Second)
		if got.Proto != "TCP" {
			t.Fatalf("%s: relayed over %s", tc.name, got.Proto)
		}
		if n := strings.Count(strings.ToLower(got.Raw), "content-length:"); n != 1 || !strings.Contains(got.Raw, tc.wantCL) ||
			!strings.HasSuffix(got.Raw, "\r\n\r\n"+tc.wantBody) {
			t.Errorf("%s: relayed\n%s", tc.name, got.Raw)
		}
	}
}
