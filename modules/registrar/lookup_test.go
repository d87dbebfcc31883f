package registrar_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// proxyScript: REGISTER is saved (X-Rcv sets $avp(RECEIVED) as nathelper's fix_nated_register would);
// other requests are looked up, answered 404/405 by the script when lookup fails, and relayed by tm —
// in parallel, or serially with t_load_contacts/t_next_contacts when the request has X-Serial.
const proxyScript = `
function ksr_request_route()
	if KSR.is_ACK() then KSR.tm.t_relay() return 1 end
	if KSR.is_REGISTER() then
		local rcv = KSR.hdr.get("X-Rcv")
		if rcv then KSR.pv.sets("$avp(RECEIVED)", rcv) end
		KSR.registrar.save("location", 0)
		return 1
	end
	local rc = KSR.registrar.lookup("location")
	if rc == -1 or rc == -3 then KSR.sl.sl_send_reply(404, "Not Found") return 1 end
	if rc == -2 then KSR.sl.sl_send_reply(405, "Method Not Allowed") return 1 end
	if KSR.hdr.get("X-Serial") then
		KSR.tm.t_load_contacts()
		KSR.tm.t_next_contacts()
		KSR.tm.t_on_failure("next")
	end
	KSR.tm.t_relay()
end
function next()
	if KSR.tm.t_next_contacts() > 0 then
		KSR.tm.t_on_failure("next")
		KSR.tm.t_relay()
	end
end
`

type net4 struct {
	p    *enginetest.Proxy
	uac  *ua
	peer []*enginetest.Client // UAS (and edge proxy) sockets
}

// startNet starts the proxy (proxyScript) on a known port and n peer sockets that send to it.
func startNet(t *testing.T, extra string, n int) *net4 {
	t.Helper()
	return startNetScript(t, extra, proxyScript, n)
}

func startNetScript(t *testing.T, extra, script string, n int) *net4 {
	t.Helper()
	port := enginetest.FreePort(t)
	proxy := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	nw := &net4{}
	for range n {
		nw.peer = append(nw.peer, enginetest.NewUDPClient(t, proxy))
	}
	listen := fmt.Sprintf("[core]\nlisten = [\"udp:127.0.0.1:%d\"]\n", port)
	nw.p = enginetest.Start(t, listen+"[modules.tm]\n[modules.sl]\n[modules.usrloc]\n[modules.registrar]\n"+extra, script)
	nw.uac = newUA(t, nw.p)
	return nw
}

func recvReq(t *testing.T, c *enginetest.Client, method string) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := c.TryRecv(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s expected at %s: %v", method, c.Addr, err)
		}
		if strings.HasPrefix(string(b), method+" ") {
			return string(b)
		}
	}
}

func reqURI(req string) string {
	line, _, _ := strings.Cut(req, "\r\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// replyTo answers a received request from a peer (and takes the ACK of a negative final reply).
func replyTo(t *testing.T, c *enginetest.Client, req, status string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, l := range strings.Split(req, "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "record-route", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=uas" + strconv.Itoa(int(c.Addr.Port())) + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	c.Send(b.String())
	if code, _ := strconv.Atoi(status[:3]); code >= 300 && strings.HasPrefix(req, "INVITE ") {
		recvReq(t, c, "ACK")
	}
}

func contactOf(c *enginetest.Client, user string) string {
	return "sip:" + user + "@" + c.Addr.String()
}

func (n *net4) register(t *testing.T, user string, cseq int, hdrs ...string) {
	t.Helper()
	if got := n.uac.register(t, user, cseq, hdrs...); status(got) != "200 OK" {
		t.Fatalf("REGISTER: %s", got)
	}
}

// TestParallelFork: two contacts of one AOR both get the INVITE (highest q as the R-URI, the other as a
// branch), each with its own contact as Request-URI; the best final reply reaches the caller.
func TestParallelFork(t *testing.T) {
	n := startNet(t, "", 2)
	n.register(t, "ivy", 1, "Contact: <"+contactOf(n.peer[1], "ivy1")+">;q=0.5")
	n.register(t, "ivy", 2, "Contact: <"+contactOf(n.peer[0], "ivy0")+">;q=0.9")
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:ivy@example.com"))
	r0 := recvReq(t, n.peer[0], "INVITE")
	r1 := recvReq(t, n.peer[1], "INVITE")
	if reqURI(r0) != contactOf(n.peer[0], "ivy0") || reqURI(r1) != contactOf(n.peer[1], "ivy1") {
		t.Fatalf("R-URIs %q %q", reqURI(r0), reqURI(r1))
	}
	replyTo(t, n.peer[1], r1, "486 Busy Here")
	replyTo(t, n.peer[0], r0, "404 Not Found")
	if got := status(string(n.uac.c.RecvFinal(3 * time.Second))); got != "404 Not Found" && got != "486 Busy Here" {
		t.Fatalf("caller got %q", got)
	}
}

// TestSerialFork: t_load_contacts/t_next_contacts try the contacts one q group at a time from the failure
// route: the two q=0.5 contacts together first (the R-URI keeps its contact's q), then after their
// failures the q=0.1 one.
func TestSerialFork(t *testing.T) {
	n := startNet(t, "", 3)
	n.register(t, "jon", 1, "Contact: <"+contactOf(n.peer[2], "jon2")+">;q=0.1, <"+contactOf(n.peer[0], "jon0")+">;q=0.5, <"+
		contactOf(n.peer[1], "jon1")+">;q=0.5")
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:jon@example.com", "X-Serial: 1"))
	r0 := recvReq(t, n.peer[0], "INVITE")
	r1 := recvReq(t, n.peer[1], "INVITE")
	if b, err := n.peer[2].TryRecv(300 * time.Millisecond); err == nil {
		t.Fatalf("the lower q contact was called at once:\n%s", b)
	}
	replyTo(t, n.peer[0], r0, "486 Busy Here")
	replyTo(t, n.peer[1], r1, "486 Busy Here")
	r2 := recvReq(t, n.peer[2], "INVITE")
	if reqURI(r2) != contactOf(n.peer[2], "jon2") {
		t.Fatalf("second step R-URI %q", reqURI(r2))
	}
	replyTo(t, n.peer[2], r2, "480 Temporarily Unavailable")
	if got := status(string(n.uac.c.RecvFinal(3 * time.Second))); got != "480 Temporarily Unavailable" {
		t.Fatalf("caller got %q", got)
	}
}

// TestPathRoute: with use_path the Path of the REGISTER is the route set to the contact: the INVITE goes to
// the first Path hop with the Path URIs as Route headers and the contact as Request-URI (RFC 3327).
func TestPathRoute(t *testing.T) {
	n := startNet(t, "use_path = true\npath_mode = 1\n", 2)
	edge := n.peer[0]
	path := "<sip:" + edge.Addr.String() + ";lr>, <sip:edge2.example.net;lr>"
	// the contact is a port nobody listens on: only the Path makes the INVITE reach the edge
	far := "sip:kim@127.0.0.1:" + strconv.Itoa(enginetest.FreePort(t))
	n.register(t, "kim", 1, "Contact: <"+far+">", "Path: "+path, "Supported: path")
	// the Path goes before a Route the request already has (as Kamailio inserts it)
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:kim@example.com", "Route: <sip:other.example.org;lr>"))
	r := recvReq(t, edge, "INVITE")
	if reqURI(r) != far {
		t.Fatalf("R-URI %q", reqURI(r))
	}
	if got := header(r, "Route"); got != path+"|<sip:other.example.org;lr>" {
		t.Fatalf("Route %q, want %q\n%s", got, path, r)
	}
	replyTo(t, edge, r, "603 Decline")
	n.uac.c.RecvFinal(3 * time.Second)

	// a branch keeps its own Path: a second contact without Path goes straight to its address
	n.register(t, "kim", 2, "Contact: <"+contactOf(n.peer[1], "kim2")+">;q=0.1", "Supported: path")
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:kim@example.com"))
	r0 := recvReq(t, edge, "INVITE")
	r1 := recvReq(t, n.peer[1], "INVITE")
	if header(r0, "Route") != path || header(r1, "Route") != "" {
		t.Fatalf("Routes %q / %q", header(r0, "Route"), header(r1, "Route"))
	}
	replyTo(t, edge, r0, "603 Decline")
	replyTo(t, n.peer[1], r1, "603 Decline")
	n.uac.c.RecvFinal(3 * time.Second)
}

// TestReceivedDestination: a binding saved with a received address (nathelper's $avp(RECEIVED)) is
// reached there: the contact stays the Request-URI, the request goes to the received address.
func TestReceivedDestination(t *testing.T) {
	n := startNet(t, "", 1)
	far := "sip:lee@127.0.0.1:" + strconv.Itoa(enginetest.FreePort(t)) // the private address behind NAT
	n.register(t, "lee", 1, "Contact: <"+far+">", "X-Rcv: sip:"+n.peer[0].Addr.String())
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:lee@example.com"))
	r := recvReq(t, n.peer[0], "INVITE")
	if reqURI(r) != far {
		t.Fatalf("R-URI %q", reqURI(r))
	}
	replyTo(t, n.peer[0], r, "486 Busy Here")
	n.uac.c.RecvFinal(3 * time.Second)
}

// TestLookupFailures: -1 for an unknown AOR (the script answers 404), -2 when method_filtering finds only
// contacts whose Allow lacks the method (405).
func TestLookupFailures(t *testing.T) {
	n := startNet(t, "method_filtering = true\n", 1)
	if got := n.uac.request(t, "INVITE", "sip:nobody@example.com"); status(got) != "404 Not Found" {
		t.Fatalf("unknown AOR: %q", status(got))
	}
	n.register(t, "max", 1, "Contact: <"+contactOf(n.peer[0], "max")+">", "Allow: INVITE, ACK, BYE")
	if got := n.uac.request(t, "MESSAGE", "sip:max@example.com"); status(got) != "405 Method Not Allowed" {
		t.Fatalf("MESSAGE to an INVITE-only contact: %q", status(got))
	}
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:max@example.com"))
	r := recvReq(t, n.peer[0], "INVITE")
	replyTo(t, n.peer[0], r, "486 Busy Here")
	n.uac.c.RecvFinal(3 * time.Second)
	// an expired binding is not found
	n.register(t, "max", 2, "Contact: <"+contactOf(n.peer[0], "max")+">;expires=0")
	if got := n.uac.request(t, "INVITE", "sip:max@example.com"); status(got) != "404 Not Found" {
		t.Fatalf("after removal: %q", status(got))
	}
}

// TestPathCheckLocal: with path_check_local a first Path hop naming this proxy is skipped: the INVITE
// goes to the next hop with only the rest of the Path as Route.
func TestPathCheckLocal(t *testing.T) {
	n := startNet(t, "use_path = true\npath_mode = 0\npath_check_local = true\n", 1)
	edge := n.peer[0]
	rest := "<sip:" + edge.Addr.String() + ";lr>"
	far := "sip:olga@127.0.0.1:" + strconv.Itoa(enginetest.FreePort(t))
	n.register(t, "olga", 1, "Contact: <"+far+">", "Path: <sip:"+n.p.UDP.String()+";lr>, "+rest)
	n.uac.c.Send(n.uac.c.Request("INVITE", "sip:olga@example.com"))
	r := recvReq(t, edge, "INVITE")
	if reqURI(r) != far || header(r, "Route") != rest {
		t.Fatalf("R-URI %q Route %q\n%s", reqURI(r), header(r, "Route"), r)
	}
	replyTo(t, edge, r, "603 Decline")
	n.uac.c.RecvFinal(3 * time.Second)
}

// TestTCPContactReusesConnection: a UA registered over TCP behind NAT (its Contact names a private address;
// the received address, as nathelper sets it, is its TCP source) gets the INVITE on the connection it
// registered on.
func TestTCPContactReusesConnection(t *testing.T) {
	p := enginetest.Start(t, "[modules.tm]\n[modules.sl]\n[modules.usrloc]\n[modules.registrar]\n", proxyScript)
	tcp := p.TCPClient(t)
	far := "sip:tina@127.0.0.1:" + strconv.Itoa(enginetest.FreePort(t)) + ";transport=tcp"
	req := tcp.Request("REGISTER", "sip:example.com", "Contact: <"+far+">", "X-Rcv: sip:"+tcp.Addr.String()+";transport=tcp")
	req = strings.Replace(req, "To: <sip:example.com>", "To: <sip:tina@example.com>", 1)
	tcp.Send(req)
	if got := string(tcp.RecvRaw(2 * time.Second)); status(got) != "200 OK" {
		t.Fatalf("REGISTER over TCP: %s", got)
	}
	uac := p.UDPClient(t)
	uac.Send(uac.Request("INVITE", "sip:tina@example.com"))
	r := recvReq(t, tcp, "INVITE")
	if reqURI(r) != far {
		t.Fatalf("R-URI %q", reqURI(r))
	}
	replyTo(t, tcp, r, "486 Busy Here")
	if got := status(string(uac.RecvFinal(3 * time.Second))); got != "486 Busy Here" {
		t.Fatalf("caller got %q", got)
	}
}
