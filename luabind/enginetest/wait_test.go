package enginetest

import (
	"net"
	"testing"
)

// TestBound: a bound socket is seen in /proc/net/udp, a closed one is not.
func TestBound(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if !Bound(port) {
		t.Fatalf("port %d bound but not seen", port)
	}
	c.Close()
	if Bound(port) {
		t.Fatalf("port %d closed but still seen", port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !Bound(l.Addr().(*net.TCPAddr).Port) {
		t.Fatalf("listening TCP port not seen")
	}
}
