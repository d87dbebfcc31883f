package nathelper

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/modules/usrloc"
)

// udpPing is Kamailio's 4-byte keepalive: zero bytes (a SIP stack ignores them).
var udpPing = []byte{0, 0, 0, 0}

// pinger sends the keepalives. One goroutine ticks every second and pings the contacts whose hash falls in
// that second's slot of natping_interval, as Kamailio's timer partitions the location table: each contact
// is pinged once per interval and the pings are spread over it instead of leaving in one burst.
type pinger struct {
	n       *Nathelper
	prefix  string // Call-ID prefix of the SIP pings: replies carrying it are ours
	seq     atomic.Uint64
	enabled atomic.Bool // nathelper.enable_ping
	quit    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	pending map[uint64]pendingPing // SIP pings waiting for a reply, by Call-ID counter
	alive   map[string]int64       // contact key → last sign of life (reply or registration), Unix s

	sent, answered, removed atomic.Uint64

	buckets [][]target // this interval's contacts by slot; only the pinger goroutine uses it
}

type pendingPing struct {
	key  string
	sent int64
}

func newPinger(n *Nathelper) *pinger {
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &pinger{n: n, prefix: "nh" + hex.EncodeToString(b[:]), quit: make(chan struct{}), done: make(chan struct{}),
		pending: map[uint64]pendingPing{}, alive: map[string]int64{}}
	p.enabled.Store(true)
	return p
}

func (p *pinger) start(ready <-chan struct{}) { go p.run(ready) }

func (p *pinger) stop() {
	close(p.quit)
	<-p.done
}

func (p *pinger) run(ready <-chan struct{}) {
	defer close(p.done)
	select {
	case <-p.quit:
		return
	case <-ready:
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	slot := 0
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		if p.enabled.Load() {
			if err := p.round(slot, time.Now().Unix()); err != nil {
				p.n.log.Warn("natping round failed", "err", err)
			}
		}
		slot = (slot + 1) % p.n.NatpingInterval
		if slot == 0 {
			p.prune(time.Now().Unix())
		}
	}
}

// target is one keepalive to send, collected while ranging over the store and sent after it.
type target struct {
	table, aor, contact string
	key                 string
	dst                 netip.AddrPort
	sock                *engine.Listener
	sip                 bool
	path                string
}

func contactKey(table string, b *usrloc.Binding) string {
	return table + "\x00" + b.AOR + "\x00" + b.Contact
}

// round pings the contacts of one slot. The location table is read once per interval, at slot 0, and
// its contacts are bucketed by slot: one pass over the table per natping_interval (a Redis store is
// scanned once per interval, not every second); a contact registered meanwhile waits for the next pass.
func (p *pinger) round(slot int, now int64) error {
	n := p.n
	ul, err := usrloc.FromEngine(n.e)
	if err != nil {
		return err
	}
	store := ul.Store()
	if store == nil {
		return nil
	}
	if slot == 0 || p.buckets == nil {
		p.buckets = make([][]target, n.NatpingInterval)
		err = store.Range("", func(table string, b *usrloc.Binding) bool {
			key := contactKey(table, b)
			if t, ok := p.targetFor(ul, table, key, b); ok {
				if t.sip && n.KeepaliveTimeout > 0 {
					p.noteRegistered(key, b.Modified)
				}
				s := slotOf(key, n.NatpingInterval)
				p.buckets[s] = append(p.buckets[s], t)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("natping: location table: %w", err)
		}
	}
	targets := p.buckets[slot]
	p.buckets[slot] = nil
	for _, t := range targets {
		if t.sip && n.KeepaliveTimeout > 0 && p.expired(t.key, now) {
			if _, err := store.Delete(t.table, t.aor, t.contact); err != nil {
				n.log.Warn("natping: unregistering a silent contact failed", "aor", t.aor, "contact", t.contact, "err", err)
				continue
			}
			p.removed.Add(1)
			n.log.Info("natping: contact unregistered after keepalive_timeout without a reply", "aor", t.aor,
				"contact", t.contact, "timeout", n.KeepaliveTimeout)
			continue
		}
		p.send(t, now)
	}
	return nil
}

// slotOf is the second of the interval a contact is pinged in: FNV-1a mixed with a 64-bit finalizer, since
// FNV's low bits alone follow the parity of the key's bytes and would put similar keys in one slot.
func slotOf(key string, interval int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return int(x % uint64(interval))
}

// targetFor decides whether and where binding b is pinged. A NATed contact is pinged only at its received
// address: its Contact names an address behind the NAT that is not reachable (and is someone else's).
func (p *pinger) targetFor(ul *usrloc.Usrloc, table, key string, b *usrloc.Binding) (target, bool) {
	n := p.n
	if n.NatpingDisableBflag >= 0 && b.CFlags&(1<<uint(n.NatpingDisableBflag)) != 0 {
		return target{}, false
	}
	nated := ul.NATed(b)
	if n.PingNatedOnly && !nated {
		return target{}, false
	}
	t := target{table: table, aor: b.AOR, contact: b.Contact, key: key}
	t.sip = n.SippingBflag >= 0 && (b.CFlags&(1<<uint(n.SippingBflag)) != 0 || !n.PingNatedOnly)
	dstURI := b.Contact
	if b.Received != "" {
		dstURI = b.Received
	} else if nated {
		return target{}, false
	}
	if t.sip && b.Path != "" {
		first := b.Path[:rawsip.FirstValueEnd([]byte(b.Path))]
		if _, uri, _, ok := rawsip.NameAddr(first); ok {
			dstURI, t.path = uri, b.Path
		}
	}
	dst, ok := udpAddr(dstURI)
	if !ok {
		return target{}, false
	}
	t.dst = dst
	t.sock = p.socket(b.Socket, dst)
	return t, t.sock != nil
}

// udpAddr is the IP:port of a UDP URI; host names are not resolved (the pinger never waits on DNS) and
// other transports are not pinged, as in Kamailio.
func udpAddr(uri string) (netip.AddrPort, bool) {
	u, ok := rawsip.ParseURI(uri)
	if !ok || strings.EqualFold(u.Scheme, "sips") {
		return netip.AddrPort{}, false
	}
	if tr, _, _, ok := rawsip.Param(u.Params, "transport"); ok && !strings.EqualFold(tr, "udp") {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return netip.AddrPort{}, false
	}
	port := 5060
	if u.Port != "" {
		if port, err = strconv.Atoi(u.Port); err != nil || port < 1 || port > 65535 {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// socket picks the UDP listener pings leave from: force_socket, else the one the contact registered on,
// else the first of the destination's address family.
func (p *pinger) socket(registered string, dst netip.AddrPort) *engine.Listener {
	want := registered
	if p.n.ForceSocket != "" {
		want = p.n.ForceSocket
	}
	var fallback *engine.Listener
	for _, l := range p.n.e.Listeners() {
		if l.Proto != engine.UDP || l.Addr.Addr().Unmap().Is4() != dst.Addr().Is4() {
			continue
		}
		if l.String() == want {
			return l
		}
		if fallback == nil {
			fallback = l
		}
	}
	return fallback
}

func (p *pinger) send(t target, now int64) {
	n := p.n
	msg, kind := udpPing, "udp"
	if t.sip {
		seq := p.seq.Add(1)
		msg, kind = p.buildSIPPing(t, seq), "sip"
		p.mu.Lock()
		p.pending[seq] = pendingPing{key: t.key, sent: now}
		p.mu.Unlock()
	}
	if err := n.e.Send(engine.UDP, t.sock, t.dst, msg); err != nil {
		n.log.Info("natping not sent", "dst", t.dst.String(), "err", err)
		return
	}
	p.sent.Add(1)
	n.log.Debug("natping sent", "kind", kind, "dst", t.dst.String(), "socket", t.sock.String(), "aor", t.aor)
}

// buildSIPPing builds the keepalive request as Kamailio's build_sipping does, with Max-Forwards added.
func (p *pinger) buildSIPPing(t target, seq uint64) []byte {
	n := p.n
	var br [6]byte
	_, _ = rand.Read(br[:])
	host, _, _ := engine.SplitHostPort(t.sock.SentBy)
	var b strings.Builder
	b.Grow(256 + 2*len(t.contact) + len(t.path))
	b.WriteString(n.SippingMethod + " " + t.contact + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + t.sock.SentBy + ";branch=z9hG4bK" + hex.EncodeToString(br[:]) + "\r\n")
	if t.path != "" {
		b.WriteString("Route: " + t.path + "\r\n")
	}
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: <" + n.SippingFrom + ">;tag=" + p.prefix + strconv.FormatUint(seq, 16) + "\r\n")
	b.WriteString("To: <" + t.contact + ">\r\n")
	b.WriteString("Call-ID: " + p.prefix + "-" + strconv.FormatUint(seq, 16) + "@" + host + "\r\n")
	b.WriteString("CSeq: 1 " + n.SippingMethod + "\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// onReply absorbs a reply to a SIP ping (one Via, our Call-ID prefix, the ping method) and notes that the
// contact is alive.
func (p *pinger) onReply(m *engine.Msg) bool {
	cid, ok := m.Header("call-id")
	if !ok || len(cid) <= len(p.prefix) || !strings.HasPrefix(cid, p.prefix) || cid[len(p.prefix)] != '-' {
		return false
	}
	if !strings.EqualFold(m.Method(), p.n.SippingMethod) || len(m.Headers("via")) != 1 {
		return false
	}
	num, _, _ := strings.Cut(cid[len(p.prefix)+1:], "@")
	seq, err := strconv.ParseUint(num, 16, 64)
	if err != nil {
		return true
	}
	p.mu.Lock()
	if pp, ok := p.pending[seq]; ok {
		delete(p.pending, seq)
		p.alive[pp.key] = time.Now().Unix()
		p.answered.Add(1)
	}
	p.mu.Unlock()
	return true
}

// expired reports whether a SIP-pinged contact has been silent for keepalive_timeout. Its clock starts at
// its first ping, so a contact registered before a restart gets the full timeout.
func (p *pinger) expired(key string, now int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, ok := p.alive[key]
	if !ok {
		p.alive[key] = now
		return false
	}
	return now-last > int64(p.n.KeepaliveTimeout)
}

// noteRegistered restarts the keepalive clock of a contact that registered again.
func (p *pinger) noteRegistered(key string, modified int64) {
	p.mu.Lock()
	if last, ok := p.alive[key]; ok && modified > last {
		p.alive[key] = modified
	}
	p.mu.Unlock()
}

// prune forgets pings that will not be answered any more and contacts long gone, so memory stays bounded
// by the contacts pinged in one keepalive window.
func (p *pinger) prune(now int64) {
	window := int64(2*p.n.NatpingInterval + p.n.KeepaliveTimeout + 10)
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, pp := range p.pending {
		if now-pp.sent > window {
			delete(p.pending, seq)
		}
	}
	for k, last := range p.alive {
		if now-last > 2*window {
			delete(p.alive, k)
		}
	}
}
