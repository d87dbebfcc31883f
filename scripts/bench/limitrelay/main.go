// Command limitrelay is the floor for ../shared/bench's S2 (stateful proxy call), as ../shared/bench/limit is
// for S1: a relay that does the least a proxy on the call's path must do to the bytes and nothing else. No
// parser, no transaction, no retransmission, no routing script, one read loop: requests get a Via (and the
// INVITE a Record-Route) and go to the Request-URI's host:port; our Route is removed from in-dialog
// requests; replies lose their top Via and go to the next Via's sent-by. No 100 Trying (SIPp's UAC takes it
// as optional). A real proxy cannot beat it on the same core: siplua's CPU per call over this one's is its
// overhead, and SIPp's response times through it are SIPp's own share of the latency at a rate.
//
//	go build -o /tmp/limitrelay ./scripts/bench/limitrelay
//	../shared/bench/run.sh --target '/tmp/limitrelay -listen 127.0.0.1:{PORT}' S2
package main

import (
	"bytes"
	"flag"
	"log"
	"net"
	"net/netip"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5060", "UDP address to serve")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil {
		log.Fatalf("limitrelay: -listen %q: %v", *listen, err)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		log.Fatalf("limitrelay: %v", err)
	}
	_ = c.SetReadBuffer(4 << 20)
	me := []byte(ap.String())
	via := append(append([]byte("Via: SIP/2.0/UDP "), me...), ";branch=z9hG4bKlr"...)
	rr := append(append([]byte("Record-Route: <sip:"), me...), ";lr>\r\n"...)
	in := make([]byte, 65535)
	out := make([]byte, 0, 65535)
	for {
		n, _, err := c.ReadFromUDPAddrPort(in)
		if err != nil {
			log.Fatalf("limitrelay: read: %v", err)
		}
		msg := in[:n]
		var to netip.AddrPort
		var ok bool
		if bytes.HasPrefix(msg, []byte("SIP/2.0 ")) {
			out, to, ok = reply(out[:0], msg)
		} else {
			out, to, ok = request(out[:0], msg, me, via, rr)
		}
		if ok {
			_, _ = c.WriteToUDPAddrPort(out, to)
		}
	}
}

// request relays a request: our Route line out, Via (branch from the client's) and, for an INVITE,
// Record-Route in, to the host:port of the Request-URI.
func request(out, msg, me, via, rr []byte) ([]byte, netip.AddrPort, bool) {
	eol := bytes.Index(msg, []byte("\r\n"))
	if eol < 0 {
		return out, netip.AddrPort{}, false
	}
	line := msg[:eol]
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 < 0 || sp2 <= sp1 {
		return out, netip.AddrPort{}, false
	}
	uri := line[sp1+1 : sp2]
	if at := bytes.IndexByte(uri, '@'); at >= 0 {
		uri = uri[at+1:]
	} else if c := bytes.IndexByte(uri, ':'); c >= 0 {
		uri = uri[c+1:]
	}
	if i := bytes.IndexAny(uri, ";>?"); i >= 0 {
		uri = uri[:i]
	}
	to, err := netip.ParseAddrPort(string(uri))
	if err != nil {
		return out, netip.AddrPort{}, false
	}
	out = append(out, msg[:eol+2]...)
	if bytes.HasPrefix(line, []byte("INVITE ")) {
		out = append(out, rr...)
	}
	rest := msg[eol+2:]
	first := true
	for len(rest) > 0 {
		e := bytes.Index(rest, []byte("\r\n"))
		if e < 0 {
			e = len(rest) - 2
		}
		hl := rest[:e+2]
		rest = rest[e+2:]
		if len(hl) == 2 { // end of headers: the body follows
			out = append(out, hl...)
			out = append(out, rest...)
			break
		}
		if bytes.HasPrefix(hl, []byte("Route:")) && bytes.Contains(hl, me) {
			continue
		}
		if first && bytes.HasPrefix(hl, []byte("Via:")) {
			first = false
			h := uint64(14695981039346656037) // FNV-1a of the client's Via: its retransmissions match
			for _, c := range hl {
				h = (h ^ uint64(c)) * 1099511628211
			}
			out = append(out, via...)
			out = strconv.AppendUint(out, h, 16)
			out = append(out, "\r\n"...)
		}
		out = append(out, hl...)
	}
	return out, to, true
}

// reply relays a reply: its top Via value (ours) out, to the sent-by of the next one, which follows in the
// same header after a comma (SIPp's [last_Via:] joins them) or in the next Via line.
func reply(out, msg []byte) ([]byte, netip.AddrPort, bool) {
	i := bytes.Index(msg, []byte("\r\nVia: "))
	if i < 0 {
		return out, netip.AddrPort{}, false
	}
	vs := i + len("\r\nVia: ") // our value starts here
	e := bytes.Index(msg[vs:], []byte("\r\n"))
	if e < 0 {
		return out, netip.AddrPort{}, false
	}
	var next []byte // the next Via value
	if c := bytes.IndexByte(msg[vs:vs+e], ','); c >= 0 {
		j := vs + c + 1
		for j < len(msg) && msg[j] == ' ' {
			j++
		}
		out = append(out, msg[:vs]...)
		out = append(out, msg[j:]...)
		next = msg[j:]
	} else {
		rest := msg[vs+e+2:]
		if !bytes.HasPrefix(rest, []byte("Via: ")) {
			return out, netip.AddrPort{}, false
		}
		out = append(out, msg[:i+2]...)
		out = append(out, rest...)
		next = rest[len("Via: "):]
	}
	if sp := bytes.IndexByte(next, ' '); sp >= 0 {
		next = next[sp+1:]
	}
	if j := bytes.IndexAny(next, ";,\r"); j >= 0 {
		next = next[:j]
	}
	to, err := netip.ParseAddrPort(string(next))
	if err != nil {
		return out[:0], netip.AddrPort{}, false
	}
	return out, to, true
}
