package engine

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// offScript is a script whose request route is a Go function.
type offScript struct{ route func(m *Msg) error }

func (s *offScript) NewState(int) (State, error) { return &offState{s}, nil }

type offState struct{ s *offScript }

func (st *offState) RequestRoute(m *Msg) error { return st.s.route(m) }
func (st *offState) ReplyRoute(*Msg) error     { return nil }
func (st *offState) Call(string, *Msg) error   { return nil }
func (st *offState) Close()                    {}

const offRequest = "INVITE sip:bob@192.0.2.9:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-1\r\n" +
	"From: <sip:a@x>;tag=1\r\nTo: <sip:bob@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"

// TestRouteOffline: socketless listeners named by the configuration (a wildcard becomes loopback, port 0
// 5060), every send captured with its destination, the message kept after the route, and a route over
// route_timeout reported as such.
func TestRouteOffline(t *testing.T) {
	cfg, err := ParseConfig([]byte("[core]\nlisten = [\"udp:0.0.0.0:0\"]\nworkers = 1\n[lua]\nroute_timeout = 30\n"), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var route func(m *Msg) error
	e, err := New(cfg, func(*Config) (Script, error) { return &offScript{func(m *Msg) error { return route(m) }}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []Sent
	e.ListenOffline(func(s Sent) { mu.Lock(); sent = append(sent, s); mu.Unlock() })
	defer e.StopOffline()
	if ls := e.Listeners(); len(ls) != 1 || ls[0].Addr.String() != "127.0.0.1:5060" || ls[0].SentBy != "127.0.0.1:5060" {
		t.Fatalf("listeners %v", ls)
	}
	take := func() []Sent { mu.Lock(); defer mu.Unlock(); s := sent; sent = nil; return s }
	src := netip.MustParseAddrPort("192.0.2.1:5070")

	route = func(m *Msg) error { return m.SendReply(404, "Not Found") }
	r := e.RouteOffline([]byte(offRequest), src, UDP)
	s := take()
	if r.Err != nil || len(s) != 1 || s[0].Dst != src || !strings.HasPrefix(string(s[0].Data), "SIP/2.0 404 Not Found\r\n") {
		t.Fatalf("reply: %+v %+v", r, s)
	}

	route = func(m *Msg) error { m.DstURI = "sip:192.0.2.50:5090"; return m.Forward("") }
	r = e.RouteOffline([]byte(offRequest), src, UDP)
	s = take()
	if r.Err != nil || len(s) != 1 || s[0].Dst.String() != "192.0.2.50:5090" || !strings.Contains(string(s[0].Data), "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=") {
		t.Fatalf("forward: %+v %q", r, s)
	}
	if r.Msg.DstURI != "sip:192.0.2.50:5090" || r.Msg.Method() != "INVITE" {
		t.Fatalf("the message after the route: du %q method %q", r.Msg.DstURI, r.Msg.Method())
	}

	route = func(m *Msg) error {
		for m.Budget().Done() == nil {
			time.Sleep(time.Millisecond)
		}
		return &RouteError{Where: "x.lua:1", Err: m.Budget().Err()}
	}
	t0 := time.Now()
	r = e.RouteOffline([]byte(offRequest), src, UDP)
	if !r.TimedOut || time.Since(t0) > 2*time.Second {
		t.Fatalf("timeout: %+v after %v", r, time.Since(t0))
	}
	take()
	route = func(m *Msg) error { return m.SendReply(200, "OK") }
	if r = e.RouteOffline([]byte(offRequest), src, UDP); r.Err != nil || r.TimedOut || len(take()) != 1 {
		t.Fatalf("the next route after a timeout: %+v", r)
	}
}
