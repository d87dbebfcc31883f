package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// UAS is a SIP server on 127.0.0.1 for tests: it records every request and answers each one except ACK
// (200 OK unless Answer says otherwise), over UDP and, when asked, TCP on the same port.
type UAS struct {
	Addr netip.AddrPort
	Got  chan Received // every request received (buffered; a test that does not read loses nothing up to 1024)
	udp  *net.UDPConn
	tcp  *net.TCPListener
}

// Received is a request as a UAS got it.
type Received struct {
	Proto string // "UDP" or "TCP"
	Raw   string
}

// StartUAS starts a UAS; answer gives the status code for a request (nil: 200; 0: no answer).
func StartUAS(t testing.TB, withTCP bool, answer func(raw string) int) *UAS {
	t.Helper()
	if answer == nil {
		answer = func(string) int { return 200 }
	}
	var u *UAS
	for try := 0; ; try++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		u = &UAS{Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), Got: make(chan Received, 1024), udp: c}
		if !withTCP {
			break
		}
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(u.Addr))
		if err == nil {
			u.tcp = l
			break
		}
		c.Close()
		if try > 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	t.Cleanup(func() {
		u.udp.Close()
		if u.tcp != nil {
			u.tcp.Close()
		}
	})
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := u.udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := string(buf[:n])
			u.record("UDP", raw)
			if r := uasReply(raw, answer); r != "" {
				_, _ = u.udp.WriteToUDPAddrPort([]byte(r), src)
			}
		}
	}()
	if u.tcp != nil {
		go func() {
			for {
				c, err := u.tcp.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					r := bufio.NewReader(c)
					for {
						raw, err := readStreamMsg(r)
						if err != nil {
							return
						}
						u.record("TCP", raw)
						if rep := uasReply(raw, answer); rep != "" {
							_, _ = c.Write([]byte(rep))
						}
					}
				}()
			}
		}()
	}
	return u
}

func (u *UAS) record(proto, raw string) {
	select {
	case u.Got <- Received{Proto: proto, Raw: raw}:
	default:
	}
}

// Next returns the next request received, failing the test after timeout.
func (u *UAS) Next(t testing.TB, timeout time.Duration) Received {
	t.Helper()
	select {
	case r := <-u.Got:
		return r
	case <-time.After(timeout):
		t.Fatalf("UAS %s: no request within %v", u.Addr, timeout)
	}
	return Received{}
}

func readStreamMsg(r *bufio.Reader) (string, error) {
	var b strings.Builder
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if b.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(line)
		if line == "\r\n" || line == "\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "content-length") || strings.EqualFold(strings.TrimSpace(k), "l")) {
			fmt.Sscan(strings.TrimSpace(v), &n)
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	b.Write(body)
	return b.String(), nil
}

// uasReply builds the answer to a request: its Vias, From, To (with a tag), Call-ID and CSeq.
func uasReply(raw string, answer func(string) int) string {
	if strings.HasPrefix(raw, "SIP/") || strings.HasPrefix(raw, "ACK ") {
		return ""
	}
	code := answer(raw)
	if code == 0 {
		return ""
	}
	reason := map[int]string{200: "OK", 180: "Ringing", 486: "Busy Here", 503: "Service Unavailable", 404: "Not Found"}[code]
	if reason == "" {
		reason = "Status"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq", "record-route":
			b.WriteString(l + "\r\n")
		case "to", "t":
			if !strings.Contains(l, "tag=") {
				l += ";tag=uas"
			}
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}
