package enginetest

import (
	"net"
	"testing"
)

// TestUDPBound: a bound socket is seen in /proc/net/udp, a closed one is not.
func TestUDPBound(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if !UDPBound(port) {
		t.Fatalf("port %d bound but not seen", port)
	}
	c.Close()
	if UDPBound(port) {
		t.Fatalf("port %d closed but still seen", port)
	}
}
