package enginetest

import (
	"net"
	"net/netip"
	"testing"
)

// NewUDPClientFrom opens a UDP socket on the loopback address local (e.g. 127.0.0.2, a source that is not
// the proxy's own address, for checks like KSR.is_myself_srcip and per-source flood limits) that sends to
// raddr. Traffic stays on the loopback interface.
func NewUDPClientFrom(t testing.TB, local netip.Addr, raddr netip.AddrPort) *Client {
	t.Helper()
	if !local.IsLoopback() {
		t.Fatalf("NewUDPClientFrom: %s is not a loopback address", local)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, Proto: "UDP", udp: c, raddr: raddr, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}
