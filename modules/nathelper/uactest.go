package nathelper

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// nat_uac_test flags, as Kamailio numbers them.
const (
	testContact1918 = 1 << iota // Contact URI host is private
	testReceived                // source IP differs from the top Via host
	testVia1918                 // top Via host is private
	testSDP1918                 // an SDP c= address is private
	testRport                   // source port differs from the top Via port (5060 when none)
	testSource1918              // the source IP is private
	testWS                      // arrived over WebSocket (WS or WSS)
	testContactPort             // source port differs from the Contact port
	testSDPCline                // no SDP session c= address equals the source IP
	testTarget                  // request: $du and the R-URI name different host:port; reply: 2nd Via was NATed
)

var (
	private = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 carrier-grade NAT
		netip.MustParsePrefix("192.0.0.0/29"),  // RFC 7335 IPv4 service continuity prefix
	}
	reserved = netip.MustParsePrefix("192.0.0.0/24") // RFC 7335 IETF protocol assignments (nat_addr_mode 1)
)

// is1918 reports whether s is an IPv4 address in the private ranges (Kamailio checks IPv4 only).
func (n *Nathelper) is1918(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return false
	}
	return n.is1918Addr(a)
}

func (n *Nathelper) is1918Addr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	for _, p := range private {
		if p.Contains(a) {
			return true
		}
	}
	return n.NatAddrMode == 1 && reserved.Contains(a)
}

// isRFC1918 is is_rfc1918(addr): 1 private, -1 not (or not an IPv4 address), -2 empty.
func (n *Nathelper) isRFC1918(_ *engine.Msg, addr string) int {
	if addr == "" {
		return -2
	}
	if n.is1918(addr) {
		return 1
	}
	return -1
}

// natUACTest is nat_uac_test(flags): 1 when any of the flagged tests says the UA is behind NAT, else -1.
func (n *Nathelper) natUACTest(m *engine.Msg, flags int) int {
	via, hasVia := m.TopVia() // raw: nat_uac_test runs on every request of a registrar script
	if flags&testRport != 0 && hasVia && m.Src.Port() != uint16(portOr5060(via.Port)) {
		return 1
	}
	if flags&testReceived != 0 && hasVia && !sameIP(via.Host, m.Src.Addr()) {
		return 1
	}
	if flags&testContact1918 != 0 {
		if c, ok := firstContact(m); ok && n.is1918(c.uri.Host) {
			return 1
		}
	}
	if flags&testSDP1918 != 0 && n.sdp1918(m) {
		return 1
	}
	if flags&testVia1918 != 0 && hasVia && n.is1918(via.Host) {
		return 1
	}
	if flags&testSource1918 != 0 && n.is1918Addr(m.Src.Addr()) {
		return 1
	}
	if flags&testWS != 0 && m.Proto.WebSocket() {
		return 1
	}
	if flags&testContactPort != 0 {
		if c, ok := firstContact(m); ok && int(m.Src.Port()) != c.port() {
			return 1
		}
	}
	if flags&testSDPCline != 0 && sdpClineDiffers(m) {
		return 1
	}
	if flags&testTarget != 0 && targetDiffers(m) {
		return 1
	}
	return -1
}

func portOr5060(p int) int {
	if p == 0 {
		return 5060
	}
	return p
}

// sameIP compares a Via or URI host with an address; a host name never matches (Kamailio's received
// test without received_dns).
func sameIP(host string, a netip.Addr) bool {
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap() == a.Unmap()
}

// sdpLines calls fn for each line of an application/sdp body with its offset in m.Buf.
func sdpLines(m *engine.Msg, fn func(line []byte, off int) bool) bool {
	body := m.Body()
	if len(body) == 0 {
		return false
	}
	if ct, ok := m.Header("content-type"); ok && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/sdp") {
		return false
	}
	off := 0
	for off < len(body) {
		end := bytes.IndexByte(body[off:], '\n')
		next := len(body)
		if end >= 0 {
			next = off + end + 1
			end = off + end
		} else {
			end = len(body)
		}
		line := bytes.TrimRight(body[off:end], "\r")
		if !fn(line, m.Raw.Body+off) {
			return true
		}
		off = next
	}
	return true
}

// cAddr returns the address of a "c=IN IP4 a.b.c.d" line and its offset in the line.
func cAddr(line []byte) (string, bool, int) {
	f := strings.Fields(string(line[2:]))
	if len(f) < 3 {
		return "", false, 0
	}
	addr := f[2]
	if i := strings.IndexByte(addr, '/'); i >= 0 { // multicast TTL
		addr = addr[:i]
	}
	return addr, f[1] == "IP4", bytes.Index(line, []byte(addr))
}

func (n *Nathelper) sdp1918(m *engine.Msg) bool {
	found := false
	sdpLines(m, func(line []byte, _ int) bool {
		if !bytes.HasPrefix(line, []byte("c=")) {
			return true
		}
		addr, ip4, _ := cAddr(line)
		if ip4 && addr != "0.0.0.0" && n.is1918(addr) {
			found = true
			return false
		}
		return true
	})
	return found
}

// sdpClineDiffers: the session-level c= addresses do not include the source IP (Kamailio's
// test_sdp_cline; a message without SDP is not NATed).
func sdpClineDiffers(m *engine.Msg) bool {
	seen, match := false, false
	ok := sdpLines(m, func(line []byte, _ int) bool {
		if bytes.HasPrefix(line, []byte("m=")) {
			return false // media-level c= lines are not session addresses
		}
		if bytes.HasPrefix(line, []byte("c=")) {
			seen = true
			addr, _, _ := cAddr(line)
			if sameIP(addr, m.Src.Addr()) {
				match = true
				return false
			}
		}
		return true
	})
	return ok && seen && !match
}

// targetDiffers is flag 512: for a request, $du and the R-URI name different host:port; for a reply,
// the second Via carries received or rport different from its host:port.
func targetDiffers(m *engine.Msg) bool {
	if m.IsRequest() {
		if m.DstURI == "" {
			return false
		}
		du, ok1 := rawsip.ParseURI(m.DstURI)
		ru, ok2 := rawsip.ParseURI(m.RURI())
		if !ok1 || !ok2 {
			return false
		}
		return !strings.EqualFold(du.Host, ru.Host) || uriPort(du) != uriPort(ru)
	}
	vias := m.Headers("via")
	var second string
	n := 0
	for _, v := range vias {
		for len(v) > 0 {
			k := rawsip.FirstValueEnd([]byte(v))
			n++
			if n == 2 {
				second = strings.TrimSpace(v[:k])
			}
			if k >= len(v) {
				break
			}
			v = v[k+1:]
		}
	}
	if second == "" {
		return false
	}
	sentBy, params, _ := strings.Cut(second, ";")
	if sp := strings.LastIndexAny(sentBy, " \t"); sp >= 0 {
		sentBy = sentBy[sp+1:]
	}
	host, port, err := engine.SplitHostPort(sentBy)
	if err != nil {
		return false
	}
	params = ";" + params
	if rcvd, _, _, ok := rawsip.Param(params, "received"); ok && rcvd != "" && !strings.EqualFold(strings.Trim(host, "[]"), rcvd) {
		return true
	}
	if rp, _, _, ok := rawsip.Param(params, "rport"); ok && rp != "" && rp != strconv.Itoa(portOr5060(port)) {
		return true
	}
	return false
}

func uriPort(u rawsip.URI) int {
	return portOr5060(u.PortNum())
}
