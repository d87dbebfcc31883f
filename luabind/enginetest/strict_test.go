package enginetest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// strictCases are requests the engine refuses before any script runs (issue 11): the answer ("code
// reason", or "" for a silent drop) and the stats.get counter that moves. framing: on TCP the framer
// refuses it first (its length on the stream is ambiguous), answers the same and closes the connection.
var strictCases = []struct {
	name    string
	msg     func(c *enginetest.Client) string
	answer  string
	counter string
	framing bool
	tcp     string // the answer on TCP when it differs (the framer's reason)
}{
	{"duplicate Call-ID", func(c *enginetest.Client) string {
		return c.Request("OPTIONS", "sip:127.0.0.1", "Call-ID: another@enginetest")
	}, "400 Duplicate Call-ID header", "rejected_duplicate_header", false, ""},
	{"duplicate compact From", func(c *enginetest.Client) string {
		return c.Request("OPTIONS", "sip:127.0.0.1", "f: <sip:mallory@127.0.0.1>;tag=9")
	}, "400 Duplicate From header", "rejected_duplicate_header", false, ""},
	{"duplicate To", func(c *enginetest.Client) string {
		return c.Request("OPTIONS", "sip:127.0.0.1", "To: <sip:other@127.0.0.1>")
	}, "400 Duplicate To header", "rejected_duplicate_header", false, ""},
	{"duplicate CSeq", func(c *enginetest.Client) string {
		return c.Request("OPTIONS", "sip:127.0.0.1", "CSeq: 2 OPTIONS")
	}, "400 Duplicate CSeq header", "rejected_duplicate_header", false, ""},
	{"duplicate Max-Forwards", func(c *enginetest.Client) string {
		return c.Request("OPTIONS", "sip:127.0.0.1", "Max-Forwards: 1")
	}, "400 Duplicate Max-Forwards header", "rejected_duplicate_header", false, ""},
	{"duplicate Content-Length", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), "Content-Length: 0\r\n", "Content-Length: 0\r\nContent-Length: 4\r\n", 1)
	}, "400 Duplicate Content-Length header", "rejected_duplicate_header", true, ""},
	{"Content-Length and l: disagree", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), "Content-Length: 0\r\n\r\n", "Content-Length: 0\r\nl: 4\r\n\r\nabcd", 1)
	}, "400 Content-Length mismatch", "rejected_content_length_mismatch", true, ""},
	{"Content-Length with a sign", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), "Content-Length: 0\r\n\r\n", "Content-Length: +4\r\n\r\nabcd", 1)
	}, "400 Bad Request", "dropped_parse_error", true, "400 Bad Content-Length"},
	{"SIP/7.0", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), " SIP/2.0\r\n", " SIP/7.0\r\n", 1)
	}, "505 Version Not Supported", "rejected_version", false, ""},
	{"top Via empty host", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), c.Addr.String()+";", ":"+fmt.Sprint(c.Addr.Port())+";", 1)
	}, "", "dropped_bad_via", false, ""},
	{"top Via bad port", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), c.Addr.String()+";", "127.0.0.1:99999;", 1)
	}, "", "dropped_bad_via", false, ""},
	{"top Via rport=abc", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), ";rport;", ";rport=abc;", 1)
	}, "", "dropped_bad_via", false, ""},
	{"top Via empty received=", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), ";rport;", ";rport;received=;", 1)
	}, "", "dropped_bad_via", false, ""},
	{"bad top Via and a duplicate Call-ID: nothing to answer to", func(c *enginetest.Client) string {
		return strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1", "Call-ID: x"), ";rport;", ";rport=;", 1)
	}, "", "dropped_bad_via", false, ""},
}

// TestStrictRejects sends each malformed request over UDP and over TCP: it gets its answer with the reason
// naming the problem (or nothing), its counter moves by one, and the next request is served (on TCP on the
// same connection, or on a new one after a framing error closed it).
func TestStrictRejects(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", registrarScript)
	for _, proto := range []string{"UDP", "TCP"} {
		for _, tt := range strictCases {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				c := p.UDPClient(t)
				if proto == "TCP" {
					c = p.TCPClient(t)
				}
				counter := tt.counter
				if proto == "TCP" && tt.framing {
					counter = "rejected_framing"
				}
				answer := tt.answer
				if proto == "TCP" && tt.tcp != "" {
					answer = tt.tcp
				}
				before := p.E.Stats().Snapshot()
				c.Send(tt.msg(c))
				b, err := c.TryRecv(400 * time.Millisecond)
				switch {
				case answer == "" && err == nil:
					t.Fatalf("expected a drop, got %q", b)
				case answer != "" && err != nil:
					t.Fatalf("expected %s, got nothing: %v", answer, err)
				case answer != "":
					if line, _, _ := strings.Cut(string(b), "\r\n"); line != "SIP/2.0 "+answer {
						t.Fatalf("got %q, want %q", line, "SIP/2.0 "+answer)
					}
				}
				deadline := time.Now().Add(2 * time.Second)
				for p.E.Stats().Snapshot()[counter] != before[counter]+1 {
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d, want %d", counter, p.E.Stats().Snapshot()[counter], before[counter]+1)
					}
					time.Sleep(5 * time.Millisecond)
				}
				if proto == "TCP" && tt.framing {
					if b, err := c.TryRecv(4 * time.Second); err == nil || isTimeout(err) {
						t.Fatalf("connection not closed after a framing error: %q, %v", b, err)
					}
					stillServes(t, p, proto)
					return
				}
				c.Send(c.Request("REGISTER", "sip:127.0.0.1")) // the same socket or connection
				if r := c.RecvResponse(2 * time.Second); r.StatusCode != 404 {
					t.Fatalf("next request: %d %s", r.StatusCode, r.Reason)
				}
			})
		}
	}
}

// TestStrictLogRateLimited: a flood of malformed requests from one source is counted in full but logged at
// most once a second.
func TestStrictLogRateLimited(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", registrarScript)
	c := p.UDPClient(t)
	const n = 50
	before := p.E.Stats().Snapshot()["rejected_duplicate_header"]
	start := time.Now()
	for range n {
		c.Send(c.Request("OPTIONS", "sip:127.0.0.1", "Call-ID: another"))
		c.RecvResponse(2 * time.Second)
	}
	if got := p.E.Stats().Snapshot()["rejected_duplicate_header"] - before; got != n {
		t.Fatalf("counted %d of %d", got, n)
	}
	lines := strings.Count(p.Log.String(), "src="+c.Addr.String())
	// one line per calendar second: the flood may straddle a second boundary
	if max := int(time.Now().Unix()-start.Unix()) + 1; lines < 1 || lines > max {
		t.Fatalf("%d log lines for %d malformed requests in %v (want 1..%d)", lines, n, time.Since(start), max)
	}
}

// TestStrictNoSmuggling: a request hidden in the body of another whose Content-Length and l: disagree is
// never routed on TCP: the outer one gets 400, the connection is closed, and nothing answers the inner one.
func TestStrictNoSmuggling(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n", registrarScript)
	c := p.TCPClient(t)
	inner := c.Request("REGISTER", "sip:127.0.0.1")
	outer := strings.Replace(c.Request("OPTIONS", "sip:127.0.0.1"), "Content-Length: 0\r\n\r\n",
		fmt.Sprintf("Content-Length: 0\r\nl: %d\r\n\r\n", len(inner)), 1)
	c.Send(outer + inner)
	b, err := c.TryRecv(2 * time.Second)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if line, _, _ := strings.Cut(string(b), "\r\n"); line != "SIP/2.0 400 Content-Length mismatch" {
		t.Fatalf("got %q", line)
	}
	if b, err := c.TryRecv(3 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("after the 400: %q, %v (want the connection closed, nothing else)", b, err)
	}
	if n := p.E.Stats().Snapshot()["requests_received_register"]; n != 0 {
		t.Fatalf("the smuggled REGISTER was routed (%d)", n)
	}
	stillServes(t, p, "TCP")
}
