// Package siptrace mirrors SIP traffic to a HEP collector (Kamailio's siptrace module in HEP mode): HEPv3
// packets over UDP or TCP, each with the message, both addresses and ports, the time, the capture agent id
// and the Call-ID as correlation id. trace_mode = 1 mirrors everything the proxy reads and sends (the
// engine's wire tap); otherwise the script chooses: sip_trace() sends the current message, and
// sip_trace_mode("t"/"d") mirrors every later message of the call for a transaction's or a dialog's
// lifetime. Packets are encoded on the goroutine that saw the message and sent by one writer goroutine
// behind a bounded queue (full: dropped and counted), so tracing never holds a worker or a socket reader.
package siptrace

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplua/siplua/engine"
)

const modName = "siptrace"

func init() {
	engine.Register(engine.Module{Name: modName, New: func() engine.Instance { return New() }})
}

// New returns the module with Kamailio's defaults.
func New() *Siptrace {
	return &Siptrace{DuplicateURI: "sip:127.0.0.1:9060", HepVersion: 3, HepCaptureID: 1, HepModeOn: true,
		Queue: 10000, TransTimeout: 180, DialogTimeout: 43200}
}

// Siptrace holds the parameters (Kamailio's names).
type Siptrace struct {
	// DuplicateURI is the collector: sip:host:port, ";transport=tcp" for HEP over TCP.
	DuplicateURI string `toml:"duplicate_uri"`
	// HepModeOn: siplua only speaks HEP (Kamailio's hep_mode_on must be 1).
	HepModeOn bool `toml:"hep_mode_on"`
	// HepVersion: 3 (HEPv3) is the only one.
	HepVersion int `toml:"hep_version"`
	// HepCaptureID is the capture agent id in every packet.
	HepCaptureID int `toml:"hep_capture_id"`
	// AuthKey, when set, goes in every packet (HEP chunk 0x000e).
	AuthKey string `toml:"auth_key"`
	// TraceOn starts with tracing enabled (Kamailio trace_on; siptrace.status on|off changes it).
	TraceOn bool `toml:"trace_on"`
	// TraceMode 1 mirrors all traffic; 0 only what the script asks for (Kamailio trace_mode).
	TraceMode int `toml:"trace_mode"`
	// Queue bounds the packets waiting for the writer.
	Queue int `toml:"queue"`
	// TransTimeout and DialogTimeout: how long sip_trace_mode("t") and ("d") keep mirroring a call's
	// messages (seconds; a BYE shortens a dialog's to 32 s).
	TransTimeout  int `toml:"trans_timeout"`
	DialogTimeout int `toml:"dialog_timeout"`

	log     *slog.Logger
	on      atomic.Bool
	dst     collector
	q       chan []byte
	stop    chan struct{}
	wg      sync.WaitGroup
	sent    atomic.Uint64
	dropped atomic.Uint64

	mu     sync.RWMutex
	calls  map[string]time.Time // Call-IDs mirrored until then
	ncalls atomic.Int32
}

type collector struct {
	tcp  bool
	addr string
}

func parseCollector(uri string) (collector, error) {
	d, err := engine.ParseDest(uri)
	if err != nil {
		return collector{}, fmt.Errorf("duplicate_uri: %w", err)
	}
	if _, err := netip.ParseAddr(d.Host); err != nil {
		return collector{}, fmt.Errorf("duplicate_uri: expected an IP address (no DNS on this path), got %q", d.Host)
	}
	port := d.Port
	if port == 0 {
		port = 9060
	}
	return collector{tcp: d.Proto == engine.TCP, addr: net.JoinHostPort(d.Host, fmt.Sprint(port))}, nil
}

// Validate checks the parameters.
func (s *Siptrace) Validate() error {
	if _, err := parseCollector(s.DuplicateURI); err != nil {
		return err
	}
	if !s.HepModeOn {
		return fmt.Errorf("hep_mode_on: siplua's siptrace only sends HEP, expected true")
	}
	if s.HepVersion != 3 {
		return fmt.Errorf("hep_version: expected 3 (HEPv3), got %d", s.HepVersion)
	}
	if s.HepCaptureID < 0 || int64(s.HepCaptureID) > 0xffffffff {
		return fmt.Errorf("hep_capture_id: expected 0..4294967295, got %d", s.HepCaptureID)
	}
	if s.TraceMode != 0 && s.TraceMode != 1 {
		return fmt.Errorf("trace_mode: expected 0 (the script decides) or 1 (all traffic), got %d", s.TraceMode)
	}
	if s.Queue < 1 {
		return fmt.Errorf("queue: expected >= 1, got %d", s.Queue)
	}
	if s.TransTimeout < 1 || s.DialogTimeout < 1 {
		return fmt.Errorf("trans_timeout, dialog_timeout: expected positive seconds, got %d, %d", s.TransTimeout, s.DialogTimeout)
	}
	return nil
}

// Start starts the writer.
func (s *Siptrace) Start(env *engine.Env) error {
	s.log = env.Log
	s.dst, _ = parseCollector(s.DuplicateURI)
	s.on.Store(s.TraceOn)
	s.calls = map[string]time.Time{}
	s.q = make(chan []byte, s.Queue)
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go s.writer()
	return nil
}

// Stop ends the writer (what is queued is sent first, for at most a second).
func (s *Siptrace) Stop() error {
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
	}
	return nil
}

func (s *Siptrace) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

// Exports: KSR.siptrace.*.
func (s *Siptrace) Exports() []engine.Export {
	return []engine.Export{
		{Name: "sip_trace", Fn: func(m *engine.Msg) int { return s.traceMsg(m, "", "") }},
		{Name: "sip_trace_dst", Fn: func(m *engine.Msg, dst string) int { return s.traceMsg(m, dst, "") }},
		{Name: "sip_trace_dst_cid", Fn: func(m *engine.Msg, dst, cid string) int { return s.traceMsg(m, dst, cid) }},
		{Name: "sip_trace_mode", Fn: s.traceMode},
	}
}

// Gauges: siptrace_sent and siptrace_dropped.
func (s *Siptrace) Gauges() []engine.Gauge {
	return []engine.Gauge{
		{Name: "siptrace_sent", Help: "HEP packets sent to the collector.", Value: func() float64 { return float64(s.sent.Load()) }},
		{Name: "siptrace_dropped", Help: "HEP packets dropped (queue full or collector unreachable).", Value: func() float64 { return float64(s.dropped.Load()) }},
	}
}

// RPC: siptrace.status on|off|check (Kamailio's).
func (s *Siptrace) RPC() []engine.Command {
	return []engine.Command{{Name: "siptrace.status", Help: "on | off | check", Fn: func(args []string) (any, error) {
		if len(args) == 1 {
			switch args[0] {
			case "on":
				s.on.Store(true)
			case "off":
				s.on.Store(false)
			case "check":
			default:
				return nil, fmt.Errorf("siptrace.status: expected on, off or check, got %q", args[0])
			}
		}
		if s.on.Load() {
			return "enabled", nil
		}
		return "disabled", nil
	}}}
}

// traceMsg is sip_trace(): the current message, as received, to the collector (or to dst). 1 sent (or
// queued), -1 tracing off or a bad destination.
func (s *Siptrace) traceMsg(m *engine.Msg, dst, cid string) int {
	if !s.on.Load() {
		return -1
	}
	if dst != "" {
		if _, err := parseCollector(dst); err != nil {
			return -1
		}
		// a per-call destination is not kept: siplua sends to duplicate_uri (logged once per call)
		s.logger().Debug("sip_trace_dst: the packet goes to duplicate_uri", "dst", dst)
	}
	if cid == "" {
		cid = m.HeaderValue("call-id")
	}
	var local netip.AddrPort
	if m.Local != nil {
		local = m.Local.Addr
	}
	s.enqueue(encode(s.HepCaptureID, s.AuthKey, m.Proto, m.Src, local, time.Now(), m.Buf, cid))
	return 1
}

// traceMode is sip_trace_mode(mode): "m" the message (as sip_trace), "t" every message of the call for
// trans_timeout, "d" for dialog_timeout (until 32 s after a BYE). 1 done, -1 tracing off or a bad mode.
func (s *Siptrace) traceMode(m *engine.Msg, mode string) int {
	if !s.on.Load() {
		return -1
	}
	var d time.Duration
	switch mode {
	case "m", "M":
		return s.traceMsg(m, "", "")
	case "t", "T":
		d = time.Duration(s.TransTimeout) * time.Second
	case "d", "D":
		d = time.Duration(s.DialogTimeout) * time.Second
	default:
		return -1
	}
	cid := m.HeaderValue("call-id")
	if cid == "" {
		return -1
	}
	s.mu.Lock()
	if _, ok := s.calls[cid]; !ok {
		s.ncalls.Add(1)
	}
	s.calls[cid] = time.Now().Add(d)
	s.mu.Unlock()
	return s.traceMsg(m, "", cid) // the message that asked is mirrored too (it was read before)
}

// Tap (engine.WireTap) mirrors what the proxy reads and sends: everything with trace_mode 1, else the
// messages of the calls sip_trace_mode named.
func (s *Siptrace) Tap(sent bool, proto engine.Proto, local, remote netip.AddrPort, b []byte) {
	if !s.on.Load() {
		return
	}
	all := s.TraceMode == 1
	if !all && s.ncalls.Load() == 0 {
		return
	}
	cid := callID(b)
	if !all && !s.traced(cid, b) {
		return
	}
	src, dst := remote, local
	if sent {
		src, dst = local, remote
	}
	s.enqueue(encode(s.HepCaptureID, s.AuthKey, proto, src, dst, time.Now(), b, cid))
}

// traced reports whether cid is mirrored now; a BYE shortens its time to 32 s, an expired one is removed.
func (s *Siptrace) traced(cid string, b []byte) bool {
	s.mu.RLock()
	until, ok := s.calls[cid]
	s.mu.RUnlock()
	if !ok {
		return false
	}
	now := time.Now()
	if now.After(until) {
		s.mu.Lock()
		if _, ok := s.calls[cid]; ok {
			delete(s.calls, cid)
			s.ncalls.Add(-1)
		}
		s.mu.Unlock()
		return false
	}
	if bytes.HasPrefix(b, []byte("BYE ")) && until.Sub(now) > 32*time.Second {
		s.mu.Lock()
		s.calls[cid] = now.Add(32 * time.Second)
		s.mu.Unlock()
	}
	return true
}

// callID finds the Call-ID in raw bytes (long or compact form) without a full parse.
func callID(b []byte) string {
	for pos := 0; pos < len(b); {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			return ""
		}
		line := b[pos : pos+nl]
		pos += nl + 1
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return "" // end of headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := strings.TrimSpace(string(line[:colon]))
		if strings.EqualFold(name, "call-id") || name == "i" || name == "I" {
			return strings.TrimSpace(string(line[colon+1:]))
		}
	}
	return ""
}

func (s *Siptrace) enqueue(pkt []byte) {
	if len(pkt) > 0xffff { // HEP's length field is 16 bits
		s.dropped.Add(1)
		return
	}
	select {
	case s.q <- pkt:
	default:
		s.dropped.Add(1)
	}
}

// writer sends the packets: one UDP datagram each, or framed one after the other on a TCP connection
// (reconnected after a failure; what cannot be sent is dropped and counted).
func (s *Siptrace) writer() {
	defer s.wg.Done()
	var conn net.Conn
	var lastLog time.Time
	fail := func(err error) {
		s.dropped.Add(1)
		if conn != nil {
			conn.Close()
			conn = nil
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			s.logger().Warn("HEP collector unreachable", "collector", s.DuplicateURI, "err", err)
		}
	}
	send := func(pkt []byte) {
		if conn == nil {
			network := "udp"
			if s.dst.tcp {
				network = "tcp"
			}
			c, err := net.DialTimeout(network, s.dst.addr, time.Second)
			if err != nil {
				fail(err)
				return
			}
			conn = c
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(pkt); err != nil {
			fail(err)
			return
		}
		s.sent.Add(1)
	}
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case pkt := <-s.q:
			send(pkt)
		case <-s.stop:
			end := time.Now().Add(time.Second)
			for time.Now().Before(end) {
				select {
				case pkt := <-s.q:
					send(pkt)
				default:
					return
				}
			}
			return
		}
	}
}
