package transport_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// edgeScript is a registrar and proxy for users on TLS and WebSocket, the WebRTC example's logic without
// authentication: WebSocket clients are always behind NAT (nat_uac_test 64): REGISTER saves the source
// address (fix_nated_register), other dialog-forming requests and replies get a Contact alias, and
// in-dialog requests follow it (handle_ruri_alias). The headers X-Proto / X-Conid answer with what the
// script saw.
const edgeScript = `
function ksr_request_route()
	KSR.force_rport()
	if KSR.nathelper.nat_uac_test(64) > 0 then
		if KSR.is_REGISTER() then
			KSR.nathelper.fix_nated_register()
		elseif KSR.siputils.is_first_hop() > 0 then
			KSR.nathelper.add_contact_alias()
		end
		KSR.setflag(5)
	end
	if KSR.is_MESSAGE() and KSR.is_WSX() then
		-- KSR.websocket.close_reason: the browser's connection ends with a close frame
		KSR.sl.sl_send_reply(200, "closing")
		KSR.info("ws close rc " .. KSR.websocket.close_reason(4000, "bye") .. " " .. KSR.websocket.close_conid(1000, "x", 999999))
		return 1
	end
	if KSR.is_OPTIONS() then
		KSR.hdr.append_to_reply("X-Proto: " .. KSR.pv.get("$proto") .. " " .. KSR.kx.get_protoid() ..
			" tls=" .. tostring(KSR.is_TLS()) .. " ws=" .. tostring(KSR.is_WS()) .. " wss=" .. tostring(KSR.is_WSS()) ..
			" ew=" .. tostring(KSR.is_proto("ew")) .. " hs=" .. KSR.websocket.handle_handshake() .. "\r\n")
		KSR.hdr.append_to_reply("X-Conid: " .. tostring(KSR.pv.get("$conid")) .. " " .. KSR.kx.get_conid() .. "\r\n")
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			if not KSR.isdsturiset() then KSR.nathelper.handle_ruri_alias() end
			KSR.tm.t_relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_REGISTER() then
		if KSR.isflagset(5) then KSR.setbflag(6) end
		KSR.registrar.save("location", 0)
		return 1
	end
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		KSR.tm.t_on_reply("ksr_onreply")
	end
	if KSR.is_myself_ruri() then
		if KSR.registrar.lookup("location") < 0 then
			KSR.sl.sl_send_reply(404, "Not Found")
			return 1
		end
	end
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end

function ksr_onreply()
	if KSR.is_WSX() or KSR.isbflagset(6) then
		KSR.nathelper.add_contact_alias()
	end
end
`

const edgeModules = `
[modules.sl]
[modules.tm]
[modules.rr]
[modules.siputils]
[modules.hdr]
[modules.pv]
[modules.kx]
[modules.usrloc]
[modules.websocket]
[modules.nathelper]
received_avp = "$avp(RECEIVED)"
[modules.registrar]
received_avp = "$avp(RECEIVED)"
`

// pki is a CA and the proxy's certificate (for 127.0.0.1 and sip.example) as files for StartFiles.
type pki struct {
	ca    *enginetest.CA
	files map[string]string
}

func newPKI(t testing.TB) *pki {
	ca := enginetest.NewCA(t, "siplua test CA")
	cert, key, _ := ca.Issue(t, "sip.example")
	return &pki{ca: ca, files: map[string]string{"cert.pem": cert, "key.pem": key, "ca.pem": ca.PEM}}
}

const tlsTable = `
[tls]
certificate = "cert.pem"
private_key = "key.pem"
`

// startEdge runs edgeScript with listeners on every transport.
func startEdge(t *testing.T, pk *pki, extra string) *enginetest.Proxy {
	t.Helper()
	files := map[string]string{"script.lua": edgeScript}
	for k, v := range pk.files {
		files[k] = v
	}
	cfg := "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\", \"tls:127.0.0.1:0\", \"ws:127.0.0.1:0\", \"wss:127.0.0.1:0\"]\naliases = [\"sip.example\"]\n" +
		extra + tlsTable + edgeModules
	return enginetest.StartFiles(t, cfg, files)
}

func clientTLS(pk *pki) *tls.Config {
	return &tls.Config{RootCAs: pk.ca.Pool, ServerName: "127.0.0.1"}
}

func startUAS(t *testing.T) *enginetest.SIPp {
	return enginetest.StartSIPp(t, "uas", filepath.Join("testdata", "sipp", "call-uas.xml"), "-m", "1")
}

// request builds a request as a client on proto would send it: Via sent-by is via (a WebSocket client's
// "*.invalid" name), Contact is contact.
func request(method, ruri, proto, via, contact, callID, ftag string, cseq int, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK%s\r\n", proto, via, enginetest.RandHex(8))
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:alice@sip.example>;tag=%s\r\n", ftag)
	to := ruri
	if method == "REGISTER" {
		to = "sip:alice@sip.example"
	}
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	if contact != "" {
		fmt.Fprintf(&b, "Contact: <%s>\r\n", contact)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

func parse(t *testing.T, b []byte) sip.Message {
	t.Helper()
	m, err := sip.ParseMessage(b)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return m
}

func status(b []byte) int {
	f := strings.Fields(string(b))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// headerValues returns every value of header name in raw (one per line).
func headerValues(raw []byte, name string) []string {
	var out []string
	for _, l := range strings.Split(string(raw), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// callThrough sends INVITE from c to the SIPp UAS through the proxy, checks the doubled Record-Route
// (rrWant, the transports of the two entries), then ACKs and BYEs along the route set.
func callThrough(t *testing.T, c *enginetest.Client, proto, via string, uas *enginetest.SIPp, rrWant [2]string) {
	t.Helper()
	ruri := "sip:service@" + uas.Addr()
	callID, ftag := enginetest.RandHex(8)+"@edge", enginetest.RandHex(4)
	c.Send(request("INVITE", ruri, proto, via, "sip:alice@"+via+";transport="+strings.ToLower(proto), callID, ftag, 1))
	ok := c.RecvFinal(10 * time.Second)
	if status(ok) != 200 {
		t.Fatalf("INVITE: got %q", ok)
	}
	var rr []string
	for _, v := range headerValues(ok, "Record-Route") {
		for _, e := range strings.Split(v, ",") {
			rr = append(rr, strings.TrimSpace(e))
		}
	}
	if len(rr) != 2 || !strings.Contains(rr[0], rrWant[0]) || !strings.Contains(rr[1], rrWant[1]) {
		t.Fatalf("Record-Route: want two entries (%s, %s) (the transport changes), got %q", rrWant[0], rrWant[1], rr)
	}
	res := parse(t, ok).(*sip.Response)
	totag, _ := res.To().Params.Get("tag")
	contact := res.Contact().Address.String()
	route := []string{"Route: " + rr[1], "Route: " + rr[0]}
	to := fmt.Sprintf("To: <%s>;tag=%s", ruri, totag)
	ack := request("ACK", contact, proto, via, "", callID, ftag, 1, route...)
	ack = strings.Replace(ack, "To: <"+contact+">", to, 1)
	c.Send(ack)
	bye := request("BYE", contact, proto, via, "", callID, ftag, 2, route...)
	bye = strings.Replace(bye, "To: <"+contact+">", to, 1)
	c.Send(bye)
	if b := c.RecvFinal(10 * time.Second); status(b) != 200 {
		t.Fatalf("BYE: got %q", b)
	}
	if err := uas.Wait(15 * time.Second); err != nil {
		t.Fatalf("SIPp UAS: %v", err)
	}
}

// register sends REGISTER from c and checks the 200 lists the contact.
func register(t *testing.T, c *enginetest.Client, proto, via, contact string) {
	t.Helper()
	c.Send(request("REGISTER", "sip:sip.example", proto, via, contact, enginetest.RandHex(8)+"@reg", enginetest.RandHex(4), 1, "Expires: 300"))
	b := c.RecvFinal(5 * time.Second)
	if status(b) != 200 || !strings.Contains(string(b), contact) {
		t.Fatalf("REGISTER: got %q", b)
	}
}

// callIn has a UDP caller call alice@sip.example: the proxy finds her registration and the INVITE must
// come to c over the connection she registered on; she answers 486.
func callIn(t *testing.T, p *enginetest.Proxy, c *enginetest.Client, proto string) {
	t.Helper()
	caller := p.UDPClient(t)
	caller.Send(caller.Request("INVITE", "sip:alice@sip.example"))
	inv := c.RecvRaw(5 * time.Second)
	if !strings.HasPrefix(string(inv), "INVITE ") {
		t.Fatalf("alice: want the INVITE, got %q", inv)
	}
	if v := headerValues(inv, "Via"); len(v) == 0 || !strings.HasPrefix(v[0], "SIP/2.0/"+proto+" ") {
		t.Fatalf("top Via: want SIP/2.0/%s from the proxy, got %q", proto, v)
	}
	c.Send(enginetest.ReplyTo(string(inv), 486))
	if b := caller.RecvFinal(5 * time.Second); status(b) != 486 {
		t.Fatalf("caller: want 486, got %q", b)
	}
}

// TestTLSRegisterAndCall: a Go crypto/tls client registers, calls a SIPp UAS on UDP through siplua (the
// Record-Route doubled: TLS in, UDP out; ACK and BYE loose-routed), and is called back over the very
// connection it registered on.
func TestTLSRegisterAndCall(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	uas := startUAS(t)
	c := enginetest.NewTLSClient(t, p.Addr(engine.TLS), clientTLS(pk))
	via := c.Addr.String()
	register(t, c, "TLS", via, "sip:alice@"+via+";transport=tls")
	callThrough(t, c, "TLS", via, uas, [2]string{"sip:" + p.UDP.String() + ";", "transport=tls"})
	callIn(t, p, c, "TLS")
}

// TestWSRegisterAndCall: WebSocket clients (ws and wss, with the "sip" subprotocol) register with an
// unreachable "*.invalid" Contact as browsers do, call a SIPp UAS on UDP and are called back over their
// connection (received address saved by fix_nated_register, found by the alias).
func TestWSRegisterAndCall(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	for _, tc := range []struct {
		proto string
		addr  netip.AddrPort
		tls   *tls.Config
	}{
		{"WS", p.Addr(engine.WS), nil},
		{"WSS", p.Addr(engine.WSS), clientTLS(pk)},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			uas := startUAS(t)
			c := enginetest.NewWSClient(t, tc.addr, enginetest.WSOptions{TLS: tc.tls, Origin: "https://app.example"})
			via := enginetest.RandHex(4) + ".invalid"
			register(t, c, tc.proto, via, "sip:alice@"+via+";transport="+strings.ToLower(tc.proto))
			callThrough(t, c, tc.proto, via, uas, [2]string{"sip:" + p.UDP.String() + ";", "transport=" + strings.ToLower(tc.proto)})
			callIn(t, p, c, tc.proto)
		})
	}
}

// TestProtoVars: $proto, KSR.kx.get_protoid, KSR.is_TLS/is_WS/is_WSS/is_proto, $conid and
// KSR.websocket.handle_handshake as Kamailio gives them, per transport.
func TestProtoVars(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	cases := []struct {
		name string
		c    *enginetest.Client
		want string
		conn bool
	}{
		{"udp", p.UDPClient(t), "udp 1 tls=false ws=false wss=false ew=false hs=-1", false},
		{"tcp", p.TCPClient(t), "tcp 2 tls=false ws=false wss=false ew=false hs=-1", true},
		{"tls", enginetest.NewTLSClient(t, p.Addr(engine.TLS), clientTLS(pk)), "tls 3 tls=true ws=false wss=false ew=true hs=-1", true},
		{"ws", enginetest.NewWSClient(t, p.Addr(engine.WS), enginetest.WSOptions{}), "ws 5 tls=false ws=true wss=false ew=false hs=1", true},
		{"wss", enginetest.NewWSClient(t, p.Addr(engine.WSS), enginetest.WSOptions{TLS: clientTLS(pk)}), "wss 6 tls=false ws=false wss=true ew=true hs=1", true},
	}
	ids := map[string]bool{}
	for _, tc := range cases {
		tc.c.Send(tc.c.Request("OPTIONS", "sip:"+p.UDP.String()))
		b := tc.c.RecvFinal(5 * time.Second)
		if got := headerValues(b, "X-Proto"); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: X-Proto: want %q, got %q", tc.name, tc.want, got)
		}
		conid := headerValues(b, "X-Conid")
		if len(conid) != 1 {
			t.Fatalf("%s: no X-Conid in %q", tc.name, b)
		}
		f := strings.Fields(conid[0])
		switch {
		case !tc.conn && conid[0] != "nil -1":
			t.Errorf("%s: $conid / get_conid: want nil -1, got %q", tc.name, conid[0])
		case tc.conn && (len(f) != 2 || f[0] != f[1] || ids[f[0]] || f[0] == "-1"):
			t.Errorf("%s: $conid / get_conid: want one fresh id twice, got %q", tc.name, conid[0])
		}
		ids[f[0]] = true
	}
}

// TestWSClose: KSR.websocket.close_reason closes the client's connection with a close frame carrying the
// code and reason (after the reply queued before it); close_conid of an unknown connection is -1.
func TestWSClose(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	o := enginetest.NewWSClient(t, p.Addr(engine.WS), enginetest.WSOptions{})
	c := enginetest.NewWSClient(t, p.Addr(engine.WS), enginetest.WSOptions{})
	c.Send(c.Request("MESSAGE", "sip:"+p.UDP.String()))
	b := c.RecvFinal(5 * time.Second)
	if !strings.HasPrefix(string(b), "SIP/2.0 200 closing\r\n") {
		t.Fatalf("reply: %q", b)
	}
	_, err := c.TryRecv(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "4000") || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("want the close frame 4000 \"bye\", got %v", err)
	}
	waitLog(t, p, "ws close rc 1 -1")
	// the other connection is untouched
	o.Send(o.Request("OPTIONS", "sip:"+p.UDP.String()))
	if b := o.RecvFinal(5 * time.Second); status(b) != 200 {
		t.Fatalf("other client: %q", b)
	}
}

// TestWSUpgradeChecks: the upgrade needs the configured path, the "sip" subprotocol and an allowed Origin;
// each refusal is an HTTP error, and a good client is served afterwards.
func TestWSUpgradeChecks(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "[websocket]\npath = \"/sip\"\nallowed_origins = [\"https://app.example\"]\n")
	addr := p.Addr(engine.WS)
	for _, tc := range []struct {
		name string
		o    enginetest.WSOptions
		want string
	}{
		{"wrong path", enginetest.WSOptions{Path: "/", Origin: "https://app.example"}, "404"},
		{"no sip subprotocol", enginetest.WSOptions{Path: "/sip", Origin: "https://app.example", Protocols: []string{"chat"}}, "400"},
		{"origin not allowed", enginetest.WSOptions{Path: "/sip", Origin: "https://evil.example"}, "403"},
	} {
		c, err := enginetest.DialWS(addr, tc.o)
		if err == nil {
			c.Close()
			t.Errorf("%s: upgrade accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want HTTP %s, got %v", tc.name, tc.want, err)
		}
	}
	c := enginetest.NewWSClient(t, addr, enginetest.WSOptions{Path: "/sip", Origin: "https://app.example"})
	c.Send(c.Request("OPTIONS", "sip:"+p.UDP.String()))
	if b := c.RecvFinal(5 * time.Second); status(b) != 200 {
		t.Fatalf("good client: got %q", b)
	}
	if !strings.Contains(p.Log.String(), "origin \\\"https://evil.example\\\" is not in allowed_origins") {
		t.Errorf("no log line for the refused origin:\n%s", p.Log.String())
	}
}

// TestTLSSNI: the certificate follows the client's server name ([[tls.server]]), the default otherwise.
func TestTLSSNI(t *testing.T) {
	pk := newPKI(t)
	for _, n := range []string{"a.example", "b.example"} {
		cert, key, _ := pk.ca.Issue(t, n)
		pk.files[n+".pem"], pk.files[n+".key"] = cert, key
	}
	p := startEdge(t, pk, `
[[tls.server]]
server_name = "a.example"
certificate = "a.example.pem"
private_key = "a.example.key"
[[tls.server]]
server_name = "B.example"
certificate = "b.example.pem"
private_key = "b.example.key"
`)
	for _, tc := range []struct{ sni, want string }{{"a.example", "a.example"}, {"b.example", "b.example"}, {"other.example", "sip.example"}, {"", "sip.example"}} {
		cfg := &tls.Config{RootCAs: pk.ca.Pool, ServerName: tc.sni, InsecureSkipVerify: tc.sni != tc.want}
		if tc.sni == "" {
			cfg.ServerName = "127.0.0.1"
			cfg.InsecureSkipVerify = false
		}
		c, err := enginetest.DialTLS(p.Addr(engine.TLS), cfg)
		if err != nil {
			t.Fatalf("sni %q: %v", tc.sni, err)
		}
		if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("sni %q: certificate %q, want %q", tc.sni, got, tc.want)
		}
		c.Close()
	}
}

// TestTLSReloadCertificate: a renewed certificate serves the next handshake after a reload, with no
// restart; a reload with a broken certificate fails and keeps the old one.
func TestTLSReloadCertificate(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	cn := func() string {
		c, err := enginetest.DialTLS(p.Addr(engine.TLS), clientTLS(pk))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "sip.example" {
		t.Fatalf("before: %q", got)
	}
	cert, key, _ := pk.ca.Issue(t, "renewed.example")
	p.WriteFile(t, "cert.pem", cert)
	p.WriteFile(t, "key.pem", key)
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := cn(); got != "renewed.example" {
		t.Fatalf("after reload: certificate %q, want renewed.example", got)
	}
	p.WriteFile(t, "key.pem", "not a key")
	if _, err := p.Reload(); err == nil || !strings.Contains(err.Error(), "private_key") {
		t.Fatalf("reload with a broken key: want an error naming private_key, got %v", err)
	}
	if got := cn(); got != "renewed.example" {
		t.Fatalf("after a failed reload: %q", got)
	}
}

// TestTLSBadCertificate: with verify_client, a client whose certificate a CA outside ca_list signed is
// refused with a log line naming why, and the next good client is served; an outgoing TLS connection to
// a server with an untrusted certificate fails the branch (logged).
func TestTLSBadCertificate(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	pk2 := newPKI(t)
	p2 := startEdge(t, pk2, "") // a TLS server p does not trust

	// verify_client on a proxy of its own
	files := map[string]string{"script.lua": edgeScript}
	for k, v := range pk.files {
		files[k] = v
	}
	pv := enginetest.StartFiles(t, "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\"]\n"+tlsTable+
		"ca_list = \"ca.pem\"\nverify_client = true\n"+edgeModules, files)
	other := enginetest.NewCA(t, "some other CA")
	_, _, badPair := other.Issue(t, "mallory")
	_, _, goodPair := pk.ca.Issue(t, "alice")
	bad := clientTLS(pk)
	// sent although the server's acceptable CAs do not list its issuer (Go's client would send none)
	bad.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &badPair, nil }
	if c, err := enginetest.DialTLS(pv.Addr(engine.TLS), bad); err == nil {
		// TLS 1.3: the client learns of the refusal on its first read
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a client certificate from an unknown CA was accepted")
		}
		c.Close()
	}
	waitLog(t, pv, "tls connection refused: certificate signed by an unknown authority")
	good := clientTLS(pk)
	good.Certificates = []tls.Certificate{goodPair}
	c := enginetest.NewTLSClient(t, pv.Addr(engine.TLS), good)
	c.Send(c.Request("OPTIONS", "sip:"+pv.UDP.String()))
	if b := c.RecvFinal(5 * time.Second); status(b) != 200 {
		t.Fatalf("good client after a bad one: got %q", b)
	}

	// outgoing: p relays to p2's TLS socket, whose certificate p does not trust (p2's CA is not p's)
	uac := p.UDPClient(t)
	uac.Send(uac.Request("INVITE", "sip:bob@"+p2.Addr(engine.TLS).String()+";transport=tls"))
	if b := uac.RecvFinal(15 * time.Second); status(b) < 400 {
		t.Fatalf("relay to an untrusted TLS server: got %q", b)
	}
	waitLog(t, p, "tls connect failed: certificate signed by an unknown authority")
}

func waitLog(t *testing.T, p *enginetest.Proxy, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q in:\n%s", want, p.Log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamLimits: a TLS or WebSocket peer that sends nothing after connecting is closed after
// handshake_timeout, and tcp_max_connections counts every stream transport.
func TestStreamLimits(t *testing.T) {
	pk := newPKI(t)
	files := map[string]string{"script.lua": edgeScript}
	for k, v := range pk.files {
		files[k] = v
	}
	pl := enginetest.StartFiles(t, "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\", \"tls:127.0.0.1:0\", \"ws:127.0.0.1:0\"]\n"+
		"tcp_max_connections = 3\n"+strings.Replace(tlsTable, "[tls]\n", "[tls]\nhandshake_timeout = 300\n", 1)+edgeModules, files)
	for _, proto := range []engine.Proto{engine.TCP, engine.TLS, engine.WS} {
		c, err := net.Dial("tcp", pl.Addr(proto).String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if err != io.EOF || time.Since(start) > 3*time.Second {
			t.Errorf("%s: a silent peer: want EOF after handshake_timeout, got %v after %v", proto, err, time.Since(start))
		}
		c.Close()
	}
	// three connections, one per stream transport, fill tcp_max_connections = 3: the fourth is refused
	a := pl.TCPClient(t)
	b := enginetest.NewTLSClient(t, pl.Addr(engine.TLS), clientTLS(pk))
	w := enginetest.NewWSClient(t, pl.Addr(engine.WS), enginetest.WSOptions{})
	for _, c := range []*enginetest.Client{a, b, w} {
		c.Send(c.Request("OPTIONS", "sip:"+pl.UDP.String()))
		if r := c.RecvFinal(5 * time.Second); status(r) != 200 {
			t.Fatalf("%s: %q", c.Proto, r)
		}
	}
	if _, err := enginetest.DialWS(pl.Addr(engine.WS), enginetest.WSOptions{}); err == nil {
		t.Fatal("a fourth stream connection was accepted with tcp_max_connections = 3")
	}
	waitLog(t, pl, "ws connection refused: tcp_max_connections reached")
}

// TestGarbageThenServed: plain SIP sent to the TLS socket, an HTTP request that is no upgrade and a
// WebSocket frame that breaks the rules each end their connection (logged), and the next client on each
// transport is served.
func TestGarbageThenServed(t *testing.T) {
	pk := newPKI(t)
	p := startEdge(t, pk, "")
	for _, tc := range []struct {
		proto engine.Proto
		send  string
	}{
		{engine.TLS, "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"},
		{engine.WS, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{engine.WSS, "\x16\x03\x01\x00\x05hello"},
	} {
		c, err := net.Dial("tcp", p.Addr(tc.proto).String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(tc.send))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // until the proxy closes
		c.Close()
	}
	w, err := enginetest.DialWS(p.Addr(engine.WS), enginetest.WSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}) // unmasked client frame
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(w)
	if len(got) < 4 || got[0] != 0x88 || got[2] != 0x03 || got[3] != 0xea { // close, 1002
		t.Errorf("unmasked frame: want a close frame with 1002, got % x", got)
	}
	w.Close()
	waitLog(t, p, "tls connection refused: not a TLS client")
	waitLog(t, p, "websocket upgrade refused")
	waitLog(t, p, "ws connection closed: bad frame")
	for _, c := range []*enginetest.Client{
		enginetest.NewTLSClient(t, p.Addr(engine.TLS), clientTLS(pk)),
		enginetest.NewWSClient(t, p.Addr(engine.WS), enginetest.WSOptions{}),
		enginetest.NewWSClient(t, p.Addr(engine.WSS), enginetest.WSOptions{TLS: clientTLS(pk)}),
	} {
		c.Send(c.Request("OPTIONS", "sip:"+p.UDP.String()))
		if b := c.RecvFinal(5 * time.Second); status(b) != 200 {
			t.Fatalf("%s after garbage: %q", c.Proto, b)
		}
	}
}

// TestWSStatelessReply: a request from a WebSocket client relayed statelessly (KSR.forward) gets rport
// and received on its Via (its sent-by is "*.invalid"), so the reply relayed back by the Via finds the
// client's connection.
func TestWSStatelessReply(t *testing.T) {
	p := enginetest.Start(t, "[core]\nlisten = [\"udp:127.0.0.1:0\", \"ws:127.0.0.1:0\"]\n", `function ksr_request_route() KSR.forward() end`)
	uas := enginetest.NewUDPClient(t, p.UDP)
	c := enginetest.NewWSClient(t, p.Addr(engine.WS), enginetest.WSOptions{})
	c.Send(request("MESSAGE", "sip:bob@"+uas.Addr.String(), "WS", "abc.invalid", "", enginetest.RandHex(6), "1", 1))
	req := uas.RecvRaw(5 * time.Second)
	vias := headerValues(req, "Via")
	if len(vias) != 2 || !strings.Contains(vias[1], ";rport="+strconv.Itoa(int(c.Addr.Port()))) || !strings.Contains(vias[1], "received=127.0.0.1") {
		t.Fatalf("the client's Via: want received and rport, got %q", vias)
	}
	uas.Send(enginetest.ReplyTo(string(req), 202))
	if b := c.RecvFinal(5 * time.Second); status(b) != 202 {
		t.Fatalf("client: %q", b)
	}
}

// TestTLSServerNameFromDNS: a TLS destination given by name (resolved through DNS) is verified against
// that name and gets it as SNI: the next hop's certificate names tls.test only, not its address.
func TestTLSServerNameFromDNS(t *testing.T) {
	pk := newPKI(t)
	cert, key, _ := pk.ca.IssueName(t, "tls.test")
	pk.files["cert.pem"], pk.files["key.pem"] = cert, key
	p2 := startEdge(t, pk, "")
	dns := enginetest.StartDNS(t)
	dns.Add(t, "tls.test. 60 IN A 127.0.0.1")
	files := map[string]string{"script.lua": fmt.Sprintf(relayScript, "")}
	for k, v := range pk.files {
		files[k] = v
	}
	p1 := enginetest.StartFiles(t, "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\"]\ndns_servers = [\""+dns.Addr+"\"]\n"+
		tlsTable+"ca_list = \"ca.pem\"\n[modules.sl]\n[modules.tm]\n[modules.rr]\n[modules.siputils]\n", files)
	c := p1.UDPClient(t)
	// by address, the certificate does not verify (first: a connection once up is reused by address)
	c.Send(c.Request("OPTIONS", "sip:bob@"+p2.Addr(engine.TLS).String()+";transport=tls"))
	if b := c.RecvFinal(10 * time.Second); status(b) < 400 {
		t.Fatalf("OPTIONS by address: want a failure, got %q", b)
	}
	waitLog(t, p1, "tls connect failed: certificate does not name the host")
	c.Send(c.Request("OPTIONS", "sip:bob@tls.test:"+strconv.Itoa(int(p2.Addr(engine.TLS).Port()))+";transport=tls"))
	b := c.RecvFinal(10 * time.Second)
	if status(b) != 200 || !strings.Contains(string(b), "X-Proto: tls 3") {
		t.Fatalf("OPTIONS over TLS to tls.test: %q", b)
	}
}
