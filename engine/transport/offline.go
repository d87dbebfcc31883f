package transport

import "net/netip"

// AddOffline adds a listener that has no socket, for routing without a network (`siplua test`): it names
// an address in Via and Record-Route and is picked like a bound one, but nothing can be read from or
// written to it, so the caller must intercept every send before Send (the engine's offline capture does).
// Serve must not be called on it (Close has nothing to close).
func (t *Transport) AddOffline(proto Proto, addr netip.AddrPort) *Listener {
	l := &Listener{Proto: proto, Addr: addr, SentBy: t.o.SentBy(addr), wild: addr.Addr().IsUnspecified()}
	t.listeners = append(t.listeners, l)
	return l
}
