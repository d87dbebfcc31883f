package siptrace_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// hepPacket is a HEPv3 packet decoded by this test's own reader, written from the field table of the HEP3
// specification (never the module's encoder): "HEP3", uint16 total length, then chunks of uint16 vendor
// id, uint16 type id, uint16 length (6-byte header included) and the value.
type hepPacket struct {
	family, ipProto, protoType byte
	src, dst                   netip.AddrPort
	sec, usec, captureID       uint32
	authKey, corrID            string
	payload                    string
}

func decodeHEP(b []byte) (*hepPacket, error) {
	if len(b) < 6 || string(b[:4]) != "HEP3" {
		return nil, fmt.Errorf("no HEP3 id")
	}
	if total := int(binary.BigEndian.Uint16(b[4:6])); total != len(b) {
		return nil, fmt.Errorf("total length %d, packet %d bytes", total, len(b))
	}
	p := &hepPacket{}
	var srcIP, dstIP netip.Addr
	var sport, dport uint16
	for pos := 6; pos < len(b); {
		if pos+6 > len(b) {
			return nil, fmt.Errorf("truncated chunk header at %d", pos)
		}
		vendor := binary.BigEndian.Uint16(b[pos:])
		typ := binary.BigEndian.Uint16(b[pos+2:])
		n := int(binary.BigEndian.Uint16(b[pos+4:]))
		if n < 6 || pos+n > len(b) {
			return nil, fmt.Errorf("chunk %#x: bad length %d", typ, n)
		}
		v := b[pos+6 : pos+n]
		pos += n
		if vendor != 0 {
			continue
		}
		switch typ {
		case 1:
			p.family = v[0]
		case 2:
			p.ipProto = v[0]
		case 3:
			srcIP = netip.AddrFrom4([4]byte(v))
		case 4:
			dstIP = netip.AddrFrom4([4]byte(v))
		case 5:
			srcIP = netip.AddrFrom16([16]byte(v))
		case 6:
			dstIP = netip.AddrFrom16([16]byte(v))
		case 7:
			sport = binary.BigEndian.Uint16(v)
		case 8:
			dport = binary.BigEndian.Uint16(v)
		case 9:
			p.sec = binary.BigEndian.Uint32(v)
		case 10:
			p.usec = binary.BigEndian.Uint32(v)
		case 11:
			p.protoType = v[0]
		case 12:
			p.captureID = binary.BigEndian.Uint32(v)
		case 14:
			p.authKey = string(v)
		case 15:
			p.payload = string(v)
		case 17:
			p.corrID = string(v)
		}
	}
	p.src, p.dst = netip.AddrPortFrom(srcIP, sport), netip.AddrPortFrom(dstIP, dport)
	return p, nil
}

// collector is a HEP collector on UDP.
type collector struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []*hepPacket
	errs []error
}

func startCollector(t *testing.T) *collector {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{conn: c}
	go func() {
		buf := make([]byte, 70000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			p, err := decodeHEP(bytes.Clone(buf[:n]))
			col.mu.Lock()
			if err != nil {
				col.errs = append(col.errs, err)
			} else {
				col.pkts = append(col.pkts, p)
			}
			col.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return col
}

func (c *collector) snapshot() ([]*hepPacket, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*hepPacket(nil), c.pkts...), append([]error(nil), c.errs...)
}

// firstLine names a SIP message: "INVITE" or "200 INVITE" (status and CSeq method).
func firstLine(payload string) string {
	line, _, _ := strings.Cut(payload, "\r\n")
	if strings.HasPrefix(line, "SIP/2.0 ") {
		code := strings.Fields(line)[1]
		for _, l := range strings.Split(payload, "\r\n") {
			if strings.HasPrefix(strings.ToLower(l), "cseq:") {
				f := strings.Fields(l)
				return code + " " + f[len(f)-1]
			}
		}
		return code
	}
	return strings.Fields(line)[0]
}

const script = `
function ksr_request_route()
	if KSR.is_REGISTER() then
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		if MODE ~= "" then KSR.siptrace.sip_trace_mode(MODE) end
	end
	KSR.tm.t_relay()
end
`

// TestHEPCapture: with trace_mode 1, a REGISTER and a SIPp call through siplua arrive at the collector,
// every message in and out, with addresses, ports, time, capture id and the Call-ID as correlation id; with
// sip_trace_mode("d") only the call's messages do (the REGISTER does not).
func TestHEPCapture(t *testing.T) {
	for _, tc := range []struct {
		name, traceMode, scriptMode string
		wantRegister                bool
	}{
		{"all traffic", "1", "", true},
		{"dialog mode from the script", "0", "d", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := startCollector(t)
			cfg := "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.siptrace]\ntrace_on = true\n" +
				"trace_mode = " + tc.traceMode + "\nhep_capture_id = 42\nduplicate_uri = \"sip:" + col.conn.LocalAddr().String() + "\"\n"
			p := enginetest.Start(t, cfg, "MODE = '"+tc.scriptMode+"'\n"+script)
			t0 := time.Now()
			c := p.UDPClient(t)
			reg := c.Request("REGISTER", "sip:example.com", "Contact: <sip:alice@"+c.Addr.String()+">")
			c.Send(reg)
			if r := c.RecvResponse(3 * time.Second); r.StatusCode != 200 {
				t.Fatalf("REGISTER: %d", r.StatusCode)
			}
			uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/call-uas.xml", "-m", "1")
			uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/call-uac.xml", p.UDP.String(), "-m", "1",
				"-key", "target", uas.Addr(), "-inf", enginetest.SIPpInjection(t, "bob"))
			if err := uac.Wait(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := uas.Wait(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			uacAddr := netip.MustParseAddrPort(uac.Addr())
			uasAddr := netip.MustParseAddrPort(uas.Addr())
			type hop struct {
				what     string
				src, dst netip.AddrPort
			}
			// the call as the proxy sees it: each message in, and out to the next hop
			want := []hop{
				{"INVITE", uacAddr, p.UDP}, {"100 INVITE", p.UDP, uacAddr}, {"INVITE", p.UDP, uasAddr},
				{"180 INVITE", uasAddr, p.UDP}, {"180 INVITE", p.UDP, uacAddr},
				{"200 INVITE", uasAddr, p.UDP}, {"200 INVITE", p.UDP, uacAddr},
				{"ACK", uacAddr, p.UDP}, {"ACK", p.UDP, uasAddr},
				{"BYE", uacAddr, p.UDP}, {"BYE", p.UDP, uasAddr},
				{"200 BYE", uasAddr, p.UDP}, {"200 BYE", p.UDP, uacAddr},
			}
			if tc.wantRegister {
				want = append(want, hop{"REGISTER", c.Addr, p.UDP}, hop{"200 REGISTER", p.UDP, c.Addr})
			}
			var pkts []*hepPacket
			var missing []hop
			deadline := time.Now().Add(5 * time.Second)
			for {
				var errs []error
				pkts, errs = col.snapshot()
				if len(errs) > 0 {
					t.Fatalf("undecodable HEP packets: %v", errs)
				}
				missing = missing[:0]
				for _, w := range want {
					found := false
					for _, pk := range pkts {
						if firstLine(pk.payload) == w.what && pk.src == w.src && pk.dst == w.dst {
							found = true
							break
						}
					}
					if !found {
						missing = append(missing, w)
					}
				}
				if len(missing) == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(missing) > 0 {
				var got []string
				for _, pk := range pkts {
					got = append(got, fmt.Sprintf("%s %s->%s", firstLine(pk.payload), pk.src, pk.dst))
				}
				t.Fatalf("missing at the collector: %v\ngot:\n%s", missing, strings.Join(got, "\n"))
			}
			for _, pk := range pkts {
				ts := time.Unix(int64(pk.sec), int64(pk.usec)*1000)
				cid := ""
				for _, l := range strings.Split(pk.payload, "\r\n") {
					if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "call-id") {
						cid = strings.TrimSpace(v)
					}
				}
				if pk.family != 2 || pk.ipProto != 17 || pk.protoType != 1 || pk.captureID != 42 || pk.corrID != cid || cid == "" ||
					ts.Before(t0.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) || pk.usec >= 1000000 {
					t.Errorf("packet %s: family %d proto %d type %d capture %d corr %q (Call-ID %q) time %s",
						firstLine(pk.payload), pk.family, pk.ipProto, pk.protoType, pk.captureID, pk.corrID, cid, ts)
				}
				if !tc.wantRegister && strings.HasPrefix(firstLine(pk.payload), "REGISTER") {
					t.Errorf("REGISTER mirrored though only the call was traced")
				}
			}
		})
	}
}

// TestHEPOverTCP: with ";transport=tcp" the packets go one after the other on a TCP connection, each
// framed by its own HEP3 length.
func TestHEPOverTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *hepPacket, 100)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			head := make([]byte, 6)
			if _, err := io.ReadFull(c, head); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint16(head[4:6]))
			if n < 6 {
				return
			}
			pkt := make([]byte, n)
			copy(pkt, head)
			if _, err := io.ReadFull(c, pkt[6:]); err != nil {
				return
			}
			p, err := decodeHEP(pkt)
			if err != nil {
				t.Errorf("bad HEP on TCP: %v", err)
				return
			}
			got <- p
		}
	}()
	cfg := "[modules.sl]\n[modules.siptrace]\ntrace_on = true\ntrace_mode = 1\nduplicate_uri = \"sip:" + l.Addr().String() + ";transport=tcp\"\n"
	p := enginetest.Start(t, cfg, "function ksr_request_route() KSR.sl.sl_send_reply(404, 'Nope') end")
	c := p.UDPClient(t)
	for i := 0; i < 3; i++ {
		c.Send(c.Request("OPTIONS", "sip:x@example.com"))
		c.RecvResponse(3 * time.Second)
	}
	want := map[string]int{"OPTIONS": 3, "404 OPTIONS": 3}
	deadline := time.After(5 * time.Second)
	for n := 0; n < 6; n++ {
		select {
		case pk := <-got:
			want[firstLine(pk.payload)]--
		case <-deadline:
			t.Fatalf("only %d packets over TCP, left: %v", n, want)
		}
	}
	if want["OPTIONS"] != 0 || want["404 OPTIONS"] != 0 {
		t.Errorf("packets over TCP, left: %v", want)
	}
}
