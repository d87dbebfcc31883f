package registrar_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// regMsg builds a REGISTER of user with a ten-digit CSeq the benchmark rewrites in place, so every save
// is a refresh with a new CSeq (not a retransmission) without parsing a new message.
func regMsg(b *testing.B, p *enginetest.Proxy, user string) (*engine.Msg, []byte) {
	raw := fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;rport;branch=z9hG4bKb%s\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:%s@example.com>;tag=1\r\nTo: <sip:%s@example.com>\r\nCall-ID: %s@bench\r\n"+
		"CSeq: 0000000001 REGISTER\r\nContact: <sip:%s@127.0.0.1:5099;transport=udp>;expires=3600\r\n"+
		"User-Agent: bench\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\nContent-Length: 0\r\n\r\n", user, user, user, user, user)
	m := enginetest.Msg(b, p, raw)
	i := strings.Index(string(m.Buf), "CSeq: ") + len("CSeq: ")
	return m, m.Buf[i : i+10]
}

func setDigits(d []byte, n int) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
}

// BenchmarkSave: save of a refresh (one binding updated) of one of 1000 AORs, memory backend. With
// flag 0x02 it is the registrar's work alone; "reply" adds building and sending the 200 OK with its
// Contact list.
func BenchmarkSave(b *testing.B) {
	for _, tc := range []struct {
		name, usrloc string
		flags        int
	}{{"noreply", "", 2}, {"reply", "", 0}, {"redis-noreply", "redis", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			p := enginetest.Start(b, "[modules.sl]\n"+usrlocConfig(b, tc.usrloc)+"[modules.registrar]\n", "function ksr_request_route() end")
			save := p.Export(b, "registrar", "save").(func(*engine.Msg, string, int) int)
			const users = 1000
			msgs := make([]*engine.Msg, users)
			cseqs := make([][]byte, users)
			for i := range msgs {
				msgs[i], cseqs[i] = regMsg(b, p, fmt.Sprintf("u%d", i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % users
				setDigits(cseqs[k], i+2)
				m := msgs[k]
				m.ReplyHdrs = m.ReplyHdrs[:0]
				m.DelModState("registrar")
				if rc := save(m, "location", tc.flags); rc != 1 && rc != 2 {
					b.Fatalf("save returned %d", rc)
				}
			}
		})
	}
}

// usrlocConfig is the [modules.usrloc] table of a benchmark: the memory backend, or a redis-server of
// its own.
func usrlocConfig(b *testing.B, backend string) string {
	if backend != "redis" {
		return "[modules.usrloc]\n"
	}
	return "[modules.usrloc]\nbackend = \"redis\"\nredis_url = \"" + startRedis(b) + "\"\n"
}

// BenchmarkLookup: lookup of an AOR with two contacts (R-URI and one branch) among 1000 AORs.
func BenchmarkLookup(b *testing.B) {
	for _, backend := range []string{"memory", "redis"} {
		b.Run(backend, func(b *testing.B) { benchLookup(b, backend) })
	}
}

func benchLookup(b *testing.B, backend string) {
	p := enginetest.Start(b, "[modules.sl]\n"+usrlocConfig(b, backend)+"[modules.registrar]\n", "function ksr_request_route() end")
	save := p.Export(b, "registrar", "save").(func(*engine.Msg, string, int) int)
	lookup := p.Export(b, "registrar", "lookup").(func(*engine.Msg, string) int)
	for i := 0; i < 1000; i++ {
		m, d := regMsg(b, p, fmt.Sprintf("u%d", i))
		save(m, "location", 2)
		setDigits(d, 2)
		m.Buf = []byte(strings.Replace(string(m.Buf), "5099;transport", "5098;transport", 1))
		m2 := enginetest.Msg(b, p, string(m.Buf))
		save(m2, "location", 2)
	}
	inv := enginetest.Msg(b, p, "INVITE sip:u500@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKinv\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:u500@example.com>\r\nCall-ID: inv@bench\r\n"+
		"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv.NewURI, inv.DstURI, inv.Branches = "", "", inv.Branches[:0]
		if rc := lookup(inv, "location"); rc != 1 || len(inv.Branches) != 1 {
			b.Fatalf("lookup returned %d with %d branches", rc, len(inv.Branches))
		}
	}
}

// BenchmarkRegisteredFlags: registered_flags with a Call-ID from xavp_cfg (an OPTIONS keepalive check).
func BenchmarkRegisteredFlags(b *testing.B) {
	p := enginetest.Start(b, "[modules.sl]\n[modules.usrloc]\n[modules.registrar]\nxavp_cfg = \"reg\"\n", "function ksr_request_route() end")
	save := p.Export(b, "registrar", "save").(func(*engine.Msg, string, int) int)
	flags := p.Export(b, "registrar", "registered_flags").(func(*engine.Msg, string, string, int) int)
	m, _ := regMsg(b, p, "u1")
	save(m, "location", 2)
	opt := enginetest.Msg(b, p, "OPTIONS sip:u1@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKo\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:u1@example.com>\r\nCall-ID: o@bench\r\n"+
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	pv, _ := p.E.LookupPV("xavp")
	if pv.Set == nil || pv.Set(opt, "reg=>match_callid", engine.StrVal("nope")) != nil {
		b.Fatal("cannot set $xavp(reg=>match_callid)")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rc := flags(opt, "location", "", 1); rc != -1 {
			b.Fatalf("registered_flags = %d, want -1 (Call-ID differs)", rc)
		}
	}
}

// BenchmarkSaveUDP measures a registration through the whole proxy, as the S3 benchmark does it: a REGISTER
// over loopback UDP to a real engine running scripts/bench/S3.lua (maxfwd, has_totag, is_REGISTER,
// save("location", 0)) and its 200 OK read back. Every REGISTER has a new Call-ID (SIPp's [call_id]) for
// one of 10 000 users, so each one rewrites a stored binding. "S1" sends the same REGISTER to S1.lua's
// stateless 404, the floor a registration is compared with. The client neither allocates nor parses, so
// allocs/op (process-wide) is the proxy's work per REGISTER.
func BenchmarkSaveUDP(b *testing.B) {
	for _, tc := range []struct{ name, script, config string }{
		{"S1", "S1.lua", "[modules.sl]\n"},
		{"S3", "S3.lua", "[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.maxfwd]\n[modules.siputils]\n" +
			"[modules.usrloc]\nsnapshot_file = \"\"\n[modules.registrar]\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			script, err := os.ReadFile("../../scripts/bench/" + tc.script)
			if err != nil {
				b.Fatal(err)
			}
			p := enginetest.Start(b, "[core]\nworkers = 1\nserver_header = \"\"\nlog_level = \"warn\"\n"+tc.config, string(script))
			benchRegisterUDP(b, p.UDP, tc.name == "S3")
		})
	}
}

func benchRegisterUDP(b *testing.B, proxy netip.AddrPort, want200 bool) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	const users = 10000
	// One template per user; the Call-ID counter, branch and CSeq are fixed-width digits rewritten in place.
	reqs := make([][]byte, users)
	type pos struct{ cid, branch, cseq int }
	at := make([]pos, users)
	for i := range reqs {
		r := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK0000000000\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:user%[2]d@%[1]s>;tag=%[2]dr1\r\nTo: <sip:user%[2]d@%[1]s>\r\n"+
			"Call-ID: 0000000000-%[2]d@bench\r\nCSeq: 0000000001 REGISTER\r\nContact: <sip:user%[2]d@127.0.0.1:5072>\r\n"+
			"Expires: 3600\r\nUser-Agent: bench-s3\r\nContent-Length: 0\r\n\r\n", local, i)
		reqs[i] = []byte(r)
		at[i] = pos{strings.Index(r, "Call-ID: ") + 9, strings.Index(r, "z9hG4bK") + 7, strings.Index(r, "CSeq: ") + 6}
	}
	buf := make([]byte, 65535)
	recv := func() {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			b.Fatalf("recv: %v", err)
		}
		if want := "SIP/2.0 404"; want200 {
			want = "SIP/2.0 200"
			if !bytes.HasPrefix(buf[:n], []byte(want)) || !bytes.Contains(buf[:n], []byte(";expires=")) {
				b.Fatalf("got %q", buf[:n])
			}
		} else if !bytes.HasPrefix(buf[:n], []byte(want)) {
			b.Fatalf("got %q", buf[:n])
		}
	}
	const window = 16
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() {
		// CPU time of the whole test process (proxy and client) per REGISTER: unlike ns/op it does not
		// grow when a loaded machine delays the round trips.
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for i := 0; i < n; i++ {
			k := sent + i
			r, p := reqs[k%users], at[k%users]
			setDigits(r[p.cid:p.cid+10], k)
			setDigits(r[p.branch:p.branch+10], k)
			setDigits(r[p.cseq:p.cseq+10], k+1)
			if _, err := c.WriteToUDPAddrPort(r, proxy); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			recv()
		}
		sent += n
	}
}

// cpuTime is the user and system CPU time the process has used, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
