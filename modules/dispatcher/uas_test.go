package dispatcher_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// uas is a real UDP SIP endpoint on 127.0.0.1 that answers every request with 200 (OPTIONS pings
// included) and counts what it got. stop closes its socket; start binds the same port again.
type uas struct {
	t     testing.TB
	port  int
	mu    sync.Mutex
	conn  *net.UDPConn
	done  chan struct{}
	reqs  atomic.Int64 // requests other than OPTIONS
	pings atomic.Int64
	code  atomic.Int32 // status of the answer to non-OPTIONS (200 by default)
	opt   atomic.Int32 // status of the answer to OPTIONS (200 by default)
}

func newUAS(t testing.TB) *uas {
	u := &uas{t: t, port: enginetest.FreePort(t)}
	u.code.Store(200)
	u.opt.Store(200)
	u.start()
	t.Cleanup(u.stop)
	return u
}

func (u *uas) uri() string { return fmt.Sprintf("sip:127.0.0.1:%d", u.port) }

func (u *uas) start() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn != nil {
		return
	}
	var c *net.UDPConn
	var err error
	for i := 0; i < 50; i++ { // the port may be briefly busy after a stop
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(u.port))))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		u.t.Fatalf("uas listen: %v", err)
	}
	u.conn, u.done = c, make(chan struct{})
	go u.serve(c, u.done)
}

func (u *uas) stop() {
	u.mu.Lock()
	c, done := u.conn, u.done
	u.conn = nil
	u.mu.Unlock()
	if c != nil {
		c.Close()
		<-done
	}
}

func (u *uas) serve(c *net.UDPConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65535)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		line, _, _ := strings.Cut(msg, "\r\n")
		method, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(line, "SIP/2.0") || method == "ACK" {
			continue
		}
		code := 200
		if method == "OPTIONS" {
			u.pings.Add(1)
			code = int(u.opt.Load())
		} else {
			u.reqs.Add(1)
			code = int(u.code.Load())
		}
		_, _ = c.WriteToUDPAddrPort(answer(msg, code), src)
	}
}

// answer builds a reply to a request: its Via, From, To (with a tag), Call-ID and CSeq.
func answer(req string, code int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, map[int]string{200: "OK", 404: "Not Found", 486: "Busy Here", 503: "Service Unavailable"}[code])
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq":
			b.WriteString(l + "\r\n")
		case "to", "t":
			if !strings.Contains(l, "tag=") {
				l += ";tag=uas"
			}
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// load sends n MESSAGEs through the proxy from `clients` UDP clients at once and returns how many got
// a 200 and the other final codes seen.
func load(t *testing.T, p *enginetest.Proxy, n, clients int, extra ...string) (ok int, bad []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	per := n / clients
	for c := 0; c < clients; c++ {
		cl := p.UDPClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				cl.Send(cl.Request("MESSAGE", "sip:service@example.net", extra...))
				code := 0
				for code < 200 {
					raw, err := cl.TryRecv(5 * time.Second)
					if err != nil {
						break
					}
					fmt.Sscanf(string(raw), "SIP/2.0 %d", &code)
				}
				mu.Lock()
				if code == 200 {
					ok++
				} else {
					bad = append(bad, fmt.Sprint(code))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, bad
}

// within reports whether got is want ± pct percent of total.
func within(got, want, total int, pct float64) bool {
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d <= pct/100*float64(total)
}

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", d, what)
}
