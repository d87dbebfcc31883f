package enginetest

import (
	"bytes"
	"time"
)

// RecvFinal reads messages until a final reply (a status 2xx to 6xx) and returns it, skipping provisional
// replies and any request; it fails the test when none comes within timeout (in all).
func (c *Client) RecvFinal(timeout time.Duration) []byte {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("no final reply within %v: %v", timeout, err)
		}
		if rest, ok := bytes.CutPrefix(b, []byte("SIP/2.0 ")); ok && len(rest) > 0 && rest[0] >= '2' && rest[0] <= '6' {
			return b
		}
	}
}
