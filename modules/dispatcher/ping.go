package dispatcher

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

// pinger probes the destinations with OPTIONS (ds_ping_method) from one goroutine, as Kamailio's
// ds_check_timer does through tm: a final reply (2xx or one of ds_ping_reply_codes) is a success, another
// final reply or no reply within ds_ping_timeout a failure. UDP pings are retransmitted as a non-INVITE
// client transaction (T1 = 500 ms, doubling, T2 = 4 s). At most one ping per destination is in flight,
// so the pending table is bounded by the list. Replies are absorbed in OnReply (engine.ReplyHook) and
// their result is applied there; Lua (event_callback) never runs on this goroutine.
type pinger struct {
	ds     *Dispatcher
	prefix string // Call-ID and From-tag prefix: replies carrying it are ours
	seq    atomic.Uint64
	active atomic.Bool // dispatcher.ping_active
	quit   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	pending  map[uint64]*ping
	inflight map[string]uint64 // "set\x00uri" → seq

	sent, answered, timedOut atomic.Uint64
}

type ping struct {
	set      int
	uri      string
	key      string
	b        []byte
	proto    engine.Proto
	sock     *engine.Listener
	d        *dest
	deadline time.Time
	next     time.Time // next retransmission (UDP)
	rto      time.Duration
	sent     time.Time // first send: the latency is measured from it
}

const (
	t1   = 500 * time.Millisecond
	t2   = 4 * time.Second
	tick = 50 * time.Millisecond
)

func newPinger(ds *Dispatcher) *pinger {
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &pinger{ds: ds, prefix: "ds" + hex.EncodeToString(b[:]), quit: make(chan struct{}), done: make(chan struct{}),
		pending: map[uint64]*ping{}, inflight: map[string]uint64{}}
	p.active.Store(true)
	return p
}

func (p *pinger) stop() {
	close(p.quit)
	<-p.done
}

func (p *pinger) run() {
	defer close(p.done)
	interval := time.Duration(p.ds.PingInterval) * time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	nextRound := time.Now().Add(interval)
	for {
		select {
		case <-p.quit:
			return
		case now := <-t.C:
			p.expire(now)
			if !now.Before(nextRound) {
				nextRound = now.Add(interval)
				if p.active.Load() {
					p.round(now)
				}
			}
		}
	}
}

func (p *pinger) timeout() time.Duration {
	if p.ds.PingTimeout > 0 {
		return time.Duration(p.ds.PingTimeout) * time.Millisecond
	}
	// half the interval: a destination that stops answering is out within 1.5 intervals at worst (the
	// next round plus the timeout); at most RFC 3261's Timer F (64·T1)
	return min(time.Duration(p.ds.PingInterval)*time.Second/2, 64*t1)
}

// shouldPing is Kamailio's ds_ping_result_helper (disabled destinations are never pinged).
func (p *pinger) shouldPing(st uint32) bool {
	if st&stDisabled != 0 {
		return false
	}
	switch mode := p.ds.ProbingMode; {
	case mode == probeAll:
		return true
	case mode != probeInactive && st&stProbing != 0:
		return true
	case mode == probeInactive && st&stProbing != 0 && st&stInactive != 0:
		return true
	}
	return false
}

// round sends one ping to every destination due one that has none in flight.
func (p *pinger) round(now time.Time) {
	l := p.ds.list.Load()
	if l == nil {
		return
	}
	type fail struct {
		set int
		uri string
	}
	var fails []fail
	for _, id := range l.ids {
		for _, d := range l.sets[id].dests {
			if d.proto == engine.ProtoNone || !p.shouldPing(d.state.Load()) {
				continue
			}
			key := strconv.Itoa(d.set) + "\x00" + d.uri
			p.mu.Lock()
			_, busy := p.inflight[key]
			p.mu.Unlock()
			if busy {
				continue
			}
			if !p.send(d, key, now) {
				fails = append(fails, fail{d.set, d.uri})
			}
		}
	}
	for _, f := range fails {
		p.ds.pingResult(f.set, f.uri, 500, "Sending keepalive failed", false)
	}
}

// send builds and sends one ping; false when it could not leave (no address, no socket).
func (p *pinger) send(d *dest, key string, now time.Time) bool {
	ds := p.ds
	if !d.dst.IsValid() {
		return false
	}
	sock := ds.socketFor(d)
	if sock == nil {
		return false
	}
	seq := p.seq.Add(1)
	b := p.build(d, sock, seq)
	pg := &ping{set: d.set, uri: d.uri, key: key, b: b, proto: d.proto, sock: sock, d: d,
		deadline: now.Add(p.timeout()), next: now.Add(t1), rto: t1, sent: now}
	p.mu.Lock()
	p.pending[seq] = pg
	p.inflight[key] = seq
	p.mu.Unlock()
	if err := ds.e.Send(d.proto, sock, d.dst, b); err != nil {
		ds.log.Debug("ping not sent", "uri", d.uri, "err", err)
		p.mu.Lock()
		delete(p.pending, seq)
		delete(p.inflight, key)
		p.mu.Unlock()
		return false
	}
	p.sent.Add(1)
	return true
}

// expire fails the pings past their deadline and retransmits the UDP ones due.
func (p *pinger) expire(now time.Time) {
	var dead []*ping
	var resend []*ping
	p.mu.Lock()
	for seq, pg := range p.pending {
		if !now.Before(pg.deadline) {
			delete(p.pending, seq)
			delete(p.inflight, pg.key)
			dead = append(dead, pg)
			continue
		}
		if pg.proto == engine.UDP && !now.Before(pg.next) {
			pg.rto = min(2*pg.rto, t2)
			pg.next = now.Add(pg.rto)
			resend = append(resend, pg)
		}
	}
	p.mu.Unlock()
	for _, pg := range resend {
		_ = p.ds.e.Send(pg.proto, pg.sock, pg.d.dst, pg.b)
	}
	for _, pg := range dead {
		p.timedOut.Add(1)
		if p.ds.PingLatencyStats > 0 {
			pg.d.lat.timeout()
		}
		p.ds.pingResult(pg.set, pg.uri, 408, "Request Timeout", false)
	}
}

// build is the ping request, as tm's t_request builds it for Kamailio's dispatcher (To = the URI).
func (p *pinger) build(d *dest, sock *engine.Listener, seq uint64) []byte {
	ds := p.ds
	var br [6]byte
	_, _ = rand.Read(br[:])
	host, _, _ := engine.SplitHostPort(sock.SentBy)
	from := ds.PingFrom
	if d.pingFrom != "" {
		from = d.pingFrom
	}
	s := strconv.FormatUint(seq, 16)
	var b strings.Builder
	b.Grow(300 + 2*len(d.uri))
	b.WriteString(ds.PingMethod + " " + d.uri + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/" + sock.Proto.Upper() + " " + sock.SentBy + ";branch=z9hG4bK" + hex.EncodeToString(br[:]) + "\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: <" + from + ">;tag=" + p.prefix + s + "\r\n")
	b.WriteString("To: <" + d.uri + ">\r\n")
	b.WriteString("Call-ID: " + p.prefix + "-" + s + "@" + host + "\r\n")
	b.WriteString("CSeq: 10 " + ds.PingMethod + "\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// onReply absorbs the replies to our pings: provisional ones are ignored, a final one ends the ping.
func (p *pinger) onReply(m *engine.Msg) bool {
	cid, ok := m.Header("call-id")
	if !ok || len(cid) <= len(p.prefix) || !strings.HasPrefix(cid, p.prefix) || cid[len(p.prefix)] != '-' {
		return false
	}
	if !strings.EqualFold(m.Method(), p.ds.PingMethod) {
		return false
	}
	num, _, _ := strings.Cut(cid[len(p.prefix)+1:], "@")
	seq, err := strconv.ParseUint(num, 16, 64)
	if err != nil {
		return true
	}
	code := m.StatusCode()
	if code < 200 {
		return true
	}
	p.mu.Lock()
	pg, ok := p.pending[seq]
	if ok {
		delete(p.pending, seq)
		delete(p.inflight, pg.key)
	}
	p.mu.Unlock()
	if !ok {
		return true // late or retransmitted reply
	}
	p.answered.Add(1)
	if p.ds.PingLatencyStats > 0 {
		pg.d.lat.add(time.Since(pg.sent), float64(p.ds.LatencyEstimatorAlpha)/1000)
	}
	reason := ""
	if m.IsReply() {
		reason = m.Reason()
	}
	p.ds.pingResult(pg.set, pg.uri, code, reason, true)
	return true
}

// pingResult is Kamailio's ds_options_callback.
func (ds *Dispatcher) pingResult(set int, uri string, code int, reason string, replied bool) {
	_, d := ds.lookup(set, uri)
	if d == nil {
		return // reloaded away meanwhile
	}
	st := d.state.Load()
	if ds.ProbingMode == probeOnlyFlagged && st&stProbing == 0 {
		return
	}
	if st&stDisabled != 0 {
		return
	}
	rc := rctx{code: code, reason: reason}
	if replied {
		rc.flags = 1
	}
	var state uint32
	if (code >= 200 && code <= 299) || ds.replyCodeOK(code) {
		if ds.ProbingMode == probeAll || (ds.ProbingMode == probeOnlyFlagged && st&stProbing != 0) {
			state |= stProbing
		}
	} else {
		state = stTrying
		if ds.ProbingMode != probeNone {
			state |= stProbing
		}
	}
	if err := ds.updateState(nil, set, uri, state, rc); err != nil {
		ds.log.Debug("ping result not applied", "uri", uri, "err", err)
	}
}

func (ds *Dispatcher) replyCodeOK(code int) bool {
	for _, c := range ds.replyCodes {
		if c == code || (c < 10 && c == code/100) {
			return true
		}
	}
	return false
}

// socketFor picks the listener a ping leaves from: the destination's socket attribute, else the first of
// its transport and address family.
func (ds *Dispatcher) socketFor(d *dest) *engine.Listener {
	var fallback *engine.Listener
	for _, l := range ds.e.Listeners() {
		if d.socket != "" && strings.EqualFold(l.String(), d.socket) {
			return l
		}
		if l.Proto != d.proto || l.Addr.Addr().Unmap().Is4() != d.dst.Addr().Is4() {
			continue
		}
		if fallback == nil {
			fallback = l
		}
	}
	return fallback
}
