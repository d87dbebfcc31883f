package rtpengine

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The ng client: one connected UDP socket per rtpengine instance and one reader goroutine per socket that
// hands each reply to the request waiting for its cookie. A request is retransmitted within the per-
// instance timeout and fails after it; a failing instance is disabled for rtpengine_disable_tout seconds
// and the next one of the set is asked. The number of requests in flight is bounded: past it a call fails
// at once instead of making a route worker wait.

var (
	errBusy    = errors.New("rtpengine: too many requests in flight")
	errTimeout = errors.New("rtpengine: no answer in time")
	errNoInst  = errors.New("rtpengine: no enabled instance in the set")
)

// instance is one rtpengine daemon.
type instance struct {
	url      string // as configured: udp:host:port
	set      int
	weight   int
	addr     *net.UDPAddr
	conn     *net.UDPConn
	disabled atomic.Int64 // unix ns until which the instance is skipped (0 = enabled)
	sent     atomic.Uint64
	timeouts atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan []byte
}

// parseSock parses "[set ==] udp:host:port[=weight]" (Kamailio's rtpengine_sock entries).
func parseSock(s string) (*instance, error) {
	in := &instance{weight: 1}
	if setPart, rest, ok := strings.Cut(s, "=="); ok {
		n, err := strconv.Atoi(strings.TrimSpace(setPart))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("rtpengine_sock %q: expected a set number before ==", s)
		}
		in.set, s = n, rest
	}
	s = strings.TrimSpace(s)
	if u, w, ok := strings.Cut(s, "="); ok {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("rtpengine_sock %q: expected a weight >= 0 after =", s)
		}
		in.weight, s = n, u
	}
	hostport, ok := strings.CutPrefix(s, "udp:")
	if !ok {
		return nil, fmt.Errorf("rtpengine_sock %q: expected udp:host:port (only the UDP ng protocol is supported)", s)
	}
	if strings.Count(hostport, ":") > 1 && !strings.HasPrefix(hostport, "[") { // udp:::1:2223 → [::1]:2223
		i := strings.LastIndexByte(hostport, ':')
		hostport = "[" + hostport[:i] + "]" + hostport[i:]
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return nil, fmt.Errorf("rtpengine_sock %q: %w", s, err)
	}
	in.url = "udp:" + hostport
	return in, nil
}

func (in *instance) open() error {
	a, err := net.ResolveUDPAddr("udp", strings.TrimPrefix(in.url, "udp:"))
	if err != nil {
		return fmt.Errorf("rtpengine %s: %w", in.url, err)
	}
	c, err := net.DialUDP("udp", nil, a)
	if err != nil {
		return fmt.Errorf("rtpengine %s: %w", in.url, err)
	}
	in.addr, in.conn, in.waiting = a, c, map[string]chan []byte{}
	go in.read()
	return nil
}

// read hands replies to their requests until the socket is closed.
func (in *instance) read() {
	buf := make([]byte, 65536)
	for {
		n, err := in.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP port unreachable and such: the request times out
		}
		sp := bytes.IndexByte(buf[:n], ' ')
		if sp <= 0 {
			continue
		}
		in.mu.Lock()
		ch := in.waiting[string(buf[:sp])]
		delete(in.waiting, string(buf[:sp]))
		in.mu.Unlock()
		if ch != nil {
			ch <- append([]byte(nil), buf[sp+1:n]...)
		}
	}
}

func (in *instance) enabled(now time.Time) bool {
	d := in.disabled.Load()
	return d == 0 || now.UnixNano() >= d
}

// client is the module's set of instances.
type client struct {
	insts    []*instance
	tout     time.Duration
	retr     int
	disable  time.Duration
	inflight chan struct{}
	seq      atomic.Uint64
	prefix   string
}

// pick orders the enabled instances of a set for a call: the first by the Call-ID's hash over the
// weights (the same call always reaches the same instance while the set does not change), then the others.
func (c *client) pick(set int, callID string) []*instance {
	now := time.Now()
	var cand []*instance
	total := 0
	for _, in := range c.insts {
		if in.set == set && in.weight > 0 && in.enabled(now) {
			cand = append(cand, in)
			total += in.weight
		}
	}
	if len(cand) <= 1 {
		return cand
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(callID))
	w := int(h.Sum32() % uint32(total))
	first := 0
	for i, in := range cand {
		if w < in.weight {
			first = i
			break
		}
		w -= in.weight
	}
	out := make([]*instance, 0, len(cand))
	out = append(out, cand[first])
	out = append(out, cand[:first]...)
	return append(out, cand[first+1:]...)
}

// do sends one ng command to the set's instance for callID, failing over once to the next instance after
// a timeout. It returns the reply dictionary and the instance that gave it.
func (c *client) do(set int, callID string, cmd map[string]any) (map[string]any, *instance, error) {
	select {
	case c.inflight <- struct{}{}:
	default:
		return nil, nil, errBusy
	}
	defer func() { <-c.inflight }()
	insts := c.pick(set, callID)
	if len(insts) == 0 {
		return nil, nil, errNoInst
	}
	var lastErr error
	for i, in := range insts {
		if i == 2 { // one failover: a route worker waits at most two timeouts
			break
		}
		r, err := c.send(in, cmd)
		if err == nil {
			return r, in, nil
		}
		lastErr = err
		if !errors.Is(err, errTimeout) {
			return nil, in, err
		}
		in.timeouts.Add(1)
		in.disabled.Store(time.Now().Add(c.disable).UnixNano())
	}
	return nil, nil, lastErr
}

// send makes one request to one instance, retransmitting within the timeout.
func (c *client) send(in *instance, cmd map[string]any) (map[string]any, error) {
	cookie := c.prefix + strconv.FormatUint(c.seq.Add(1), 36)
	pkt := append([]byte(cookie), ' ')
	pkt, err := Encode(pkt, cmd)
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	in.mu.Lock()
	in.waiting[cookie] = ch
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.waiting, cookie)
		in.mu.Unlock()
	}()
	deadline := time.NewTimer(c.tout)
	defer deadline.Stop()
	iv := c.tout / time.Duration(c.retr+1)
	tick := time.NewTicker(iv)
	defer tick.Stop()
	in.sent.Add(1)
	if _, err := in.conn.Write(pkt); err != nil {
		return nil, fmt.Errorf("rtpengine %s: %w", in.url, err)
	}
	for {
		select {
		case b := <-ch:
			v, err := Decode(b)
			if err != nil {
				return nil, fmt.Errorf("rtpengine %s: reply: %w", in.url, err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rtpengine %s: reply is not a dictionary", in.url)
			}
			if res, _ := d["result"].(string); res == "error" {
				reason, _ := d["error-reason"].(string)
				return d, fmt.Errorf("rtpengine %s: %s", in.url, reason)
			}
			return d, nil
		case <-tick.C:
			_, _ = in.conn.Write(pkt)
		case <-deadline.C:
			return nil, fmt.Errorf("rtpengine %s: %w (%s)", in.url, errTimeout, c.tout)
		}
	}
}

func (c *client) close() {
	for _, in := range c.insts {
		if in.conn != nil {
			in.conn.Close()
		}
	}
}
