package registrar_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// regScript saves REGISTERs (X-Flags chooses the flags: with 0x02 the script adds X-Save with save's
// return code and answers with reg_send_reply) and answers other requests with the outcome of lookup.
const regScript = `
function ksr_request_route()
	if KSR.is_REGISTER() then
		local f = tonumber(KSR.hdr.get("X-Flags") or "0")
		local u = KSR.hdr.get("X-URI")
		local rc
		if u then rc = KSR.registrar.save_uri("location", f, u) else rc = KSR.registrar.save("location", f) end
		if f % 4 >= 2 then
			KSR.hdr.append_to_reply("X-Save: " .. rc .. "\r\n")
			KSR.registrar.reg_send_reply()
		end
		return 1
	end
	local rc = KSR.registrar.lookup("location")
	local br = {}
	KSR.hdr.append_to_reply("X-Ret: " .. rc .. "\r\nX-Ru: " .. KSR.pv.get("$ru") .. "\r\nX-Du: " .. tostring(KSR.pv.get("$du")) .. "\r\n")
	KSR.sl.sl_send_reply(404, "Lookup")
end
`

const regConfig = `
[modules.sl]
[modules.usrloc]
[modules.registrar]
`

// ua sends requests with a fixed Call-ID like a registering UA.
type ua struct {
	c      *enginetest.Client
	callID string
}

func newUA(t *testing.T, p *enginetest.Proxy) *ua {
	return &ua{c: p.UDPClient(t), callID: enginetest.RandHex(8) + "@ua"}
}

// register sends a REGISTER for user@example.com with the given CSeq and header lines and returns the
// reply.
func (u *ua) register(t *testing.T, user string, cseq int, hdrs ...string) string {
	t.Helper()
	return u.registerRaw(t, strings.NewReplacer(), user, cseq, hdrs...)
}

// registerRaw is register with the request text passed through rep (to change the domain).
func (u *ua) registerRaw(t *testing.T, rep *strings.Replacer, user string, cseq int, hdrs ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK%s\r\n", u.c.Addr, enginetest.RandHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@example.com>;tag=%s\r\nTo: <sip:%s@example.com>\r\n", user, enginetest.RandHex(4), user)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\n", u.callID, cseq)
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	u.c.Send(rep.Replace(b.String()))
	return string(u.c.RecvRaw(2 * time.Second))
}

func (u *ua) request(t *testing.T, method, ruri string, hdrs ...string) string {
	t.Helper()
	u.c.Send(u.c.Request(method, ruri, hdrs...))
	return string(u.c.RecvRaw(2 * time.Second))
}

func status(reply string) string {
	line, _, _ := strings.Cut(reply, "\r\n")
	return strings.TrimPrefix(line, "SIP/2.0 ")
}

// header returns the values of a header in a raw message, joined by "|" ("" when absent).
func header(reply, name string) string {
	var out []string
	head, _, _ := strings.Cut(reply, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return strings.Join(out, "|")
}

var expiresRe = regexp.MustCompile(`expires=(\d+)`)

// TestSaveOnTheWire replays the REGISTER sequence run against Kamailio 5.6 (registrar with max_contacts 2,
// min_expires 60, default_expires 3600) and compares status, Contact list and P-Registrar-Error with what
// Kamailio sent.
func TestSaveOnTheWire(t *testing.T) {
	p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n", "[modules.registrar]\nmax_contacts = 2\n", 1), regScript)
	u := newUA(t, p)
	for i, s := range []struct {
		cseq    int
		hdrs    []string
		status  string
		contact string // the Contact header of the reply
		errHdr  string
	}{
		{1, []string{"Contact: <sip:alice@10.0.0.1:5070>;q=0.5", "User-Agent: ua1"}, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600", ""},
		// 30 s is raised to min_expires; no q sorts after q=0.5 (Kamailio's usrloc order)
		{2, []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 30"}, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=60", ""},
		{3, []string{"Contact: <sip:alice@10.0.0.3:5070>", "Expires: 300"}, "503 Service Unavailable", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=60", "Too many registered contacts"},
		{3, []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 300"}, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", ""},
		{2, []string{"Contact: <sip:alice@10.0.0.2:5070>", "Expires: 300"}, "400 Bad Request", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", "Invalid CSeq number"},
		{5, []string{"Contact: *"}, "400 Bad Request", "", "* used in contact and expires is not zero"},
		{5, []string{"Contact: *", "Expires: 0", "Contact: <sip:a@b>"}, "400 Bad Request", "", "* used in contact and more than 1 contact"},
		{6, nil, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", ""},
		// the same CSeq again within cseq_delay: a retransmission, answered with the bindings unchanged
		{3, []string{"Contact: <sip:alice@10.0.0.2:5070>;expires=900"}, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", ""},
		{7, []string{"Contact: <sip:alice@10.0.0.2:5070>;q=abc"}, "400 Bad Request", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", "Invalid q param in contact"},
		{8, []string{"Contact: <sip:alice@10.0.0.2:5070>;q=2"}, "400 Bad Request", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;expires=300", "Invalid q param in contact"},
		// an expires parameter that is not a number means default_expires; a new q does not move the
		// binding (Kamailio 5.6 keeps the list order of an update)
		{9, []string{"Contact: <sip:alice@10.0.0.2:5070>;expires=abc;q=1"}, "200 OK", "<sip:alice@10.0.0.1:5070>;q=0.5;expires=3600, <sip:alice@10.0.0.2:5070>;q=1;expires=3600", ""},
		// expires=0 removes one contact
		{10, []string{"Contact: <sip:alice@10.0.0.1:5070>;expires=0"}, "200 OK", "<sip:alice@10.0.0.2:5070>;q=1;expires=3600", ""},
		{11, []string{"Expires: abc", "Contact: <sip:alice@10.0.0.1:5070>"}, "400 Bad Request", "", "Expires parse error"},
		{12, []string{"Contact: *", "Expires: 0"}, "200 OK", "", ""},
		{13, nil, "200 OK", "", ""},
	} {
		got := u.register(t, "alice", s.cseq, s.hdrs...)
		if st := status(got); st != s.status {
			t.Fatalf("step %d: status %q, want %q\n%s", i, st, s.status, got)
		}
		if c := header(got, "Contact"); c != s.contact {
			t.Fatalf("step %d: Contact %q, want %q\n%s", i, c, s.contact, got)
		}
		if e := header(got, "P-Registrar-Error"); e != s.errHdr {
			t.Fatalf("step %d: P-Registrar-Error %q, want %q", i, e, s.errHdr)
		}
		if !strings.Contains(header(got, "To"), ";tag=") {
			t.Fatalf("step %d: no To tag\n%s", i, got)
		}
	}
}

// TestSaveReturnCodes checks save's return codes (Kamailio: 1 inserted, 2 updated, 3 deleted, 4 listed,
// -1 error, -2 too many contacts) through flag 0x02 and reg_send_reply.
func TestSaveReturnCodes(t *testing.T) {
	p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n", "[modules.registrar]\nmax_contacts = 1\n", 1), regScript)
	u := newUA(t, p)
	for i, s := range []struct {
		hdrs   []string
		status string
		ret    string
	}{
		{[]string{"Contact: <sip:bob@10.0.0.1>"}, "200 OK", "1"},
		{[]string{"Contact: <sip:bob@10.0.0.1>;expires=100"}, "200 OK", "2"},
		{nil, "200 OK", "4"},
		{[]string{"Contact: <sip:bob@10.0.0.2>"}, "503 Service Unavailable", "-2"},
		{[]string{"Contact: <sip:bob@10.0.0.1>;expires=0"}, "200 OK", "3"},
		{[]string{"Contact: <sip:bob@10.0.0.1>;q=x"}, "400 Bad Request", "-1"},
		{[]string{"Contact: *", "Expires: 0"}, "200 OK", "3"},
	} {
		got := u.register(t, "bob", i+1, append([]string{"X-Flags: 2"}, s.hdrs...)...)
		if status(got) != s.status || header(got, "X-Save") != s.ret {
			t.Fatalf("step %d: got %q X-Save %q, want %q %q\n%s", i, status(got), header(got, "X-Save"), s.status, s.ret, got)
		}
	}
}

// TestExpiresLimits: min_expires_mode 1 answers 423 with Min-Expires (RFC 3261 §10.3 step 7), max_expires
// caps, expires 0 is never "too brief", the expires parameter wins over the Expires header.
func TestExpiresLimits(t *testing.T) {
	p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n",
		"[modules.registrar]\nmin_expires_mode = 1\nmin_expires = 120\nmax_expires = 600\ndefault_expires = 300\n", 1), regScript)
	u := newUA(t, p)
	for i, s := range []struct {
		hdrs    []string
		status  string
		expires string
		minExp  string
	}{
		{[]string{"Contact: <sip:carol@10.0.0.1>;expires=30"}, "423 Interval Too Brief", "", "120"},
		{[]string{"Contact: <sip:carol@10.0.0.1>", "Expires: 119"}, "423 Interval Too Brief", "", "120"},
		{[]string{"Contact: <sip:carol@10.0.0.1>;expires=120", "Expires: 30"}, "200 OK", "120", ""},
		{[]string{"Contact: <sip:carol@10.0.0.1>;expires=100000"}, "200 OK", "600", ""},
		{[]string{"Contact: <sip:carol@10.0.0.1>"}, "200 OK", "300", ""},
		{[]string{"Contact: <sip:carol@10.0.0.1>", "Expires: 0"}, "200 OK", "", ""},
	} {
		got := u.register(t, "carol", i+1, s.hdrs...)
		if status(got) != s.status {
			t.Fatalf("step %d: %q, want %q\n%s", i, status(got), s.status, got)
		}
		exp := ""
		if mm := expiresRe.FindStringSubmatch(header(got, "Contact")); mm != nil {
			exp = mm[1]
		}
		if exp != s.expires || header(got, "Min-Expires") != s.minExp {
			t.Fatalf("step %d: expires %q Min-Expires %q, want %q %q\n%s", i, exp, header(got, "Min-Expires"), s.expires, s.minExp, got)
		}
		if s.status != "200 OK" && header(got, "P-Registrar-Error") != "Interval too brief" {
			t.Fatalf("step %d: P-Registrar-Error %q", i, header(got, "P-Registrar-Error"))
		}
	}
}

// TestRemainingExpires: the 200 OK of a refresh shows the seconds left, not the seconds asked for.
func TestRemainingExpires(t *testing.T) {
	p := enginetest.Start(t, regConfig, regScript)
	u := newUA(t, p)
	u.register(t, "dave", 1, "Contact: <sip:dave@10.0.0.1>;expires=100")
	time.Sleep(1100 * time.Millisecond)
	got := u.register(t, "dave", 2)
	mm := expiresRe.FindStringSubmatch(header(got, "Contact"))
	if mm == nil {
		t.Fatalf("no expires in\n%s", got)
	}
	if n, _ := strconv.Atoi(mm[1]); n < 97 || n > 99 {
		t.Fatalf("remaining expires %d, want 97..99", n)
	}
}

// TestAORCanonical: the To URI is the AOR, user part case-insensitive and unescaped, domain ignored
// without use_domain; save_uri takes the AOR from its argument.
func TestAORCanonical(t *testing.T) {
	p := enginetest.Start(t, regConfig, regScript)
	u := newUA(t, p)
	u.register(t, "Erin%41", 1, "Contact: <sip:erin@10.0.0.9>")
	got := u.request(t, "INVITE", "sip:erina@other.example.org")
	if header(got, "X-Ret") != "1" || header(got, "X-Ru") != "sip:erin@10.0.0.9" {
		t.Fatalf("lookup of the canonical AOR:\n%s", got)
	}
	u2 := newUA(t, p)
	u2.register(t, "nobody", 1, "X-URI: sip:frank@example.com", "Contact: <sip:frank@10.0.0.8>")
	if got := u.request(t, "INVITE", "sip:frank@example.com"); header(got, "X-Ru") != "sip:frank@10.0.0.8" {
		t.Fatalf("save_uri did not save under its URI:\n%s", got)
	}
}

// TestUseDomain: with use_domain the domain is part of the AOR (realm_prefix stripped).
func TestUseDomain(t *testing.T) {
	p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n", "[modules.registrar]\nuse_domain = true\nrealm_prefix = \"sip.\"\n", 1), regScript)
	u := newUA(t, p)
	u.register(t, "gina", 1, "Contact: <sip:gina@10.0.0.7>")
	if got := u.request(t, "INVITE", "sip:gina@sip.EXAMPLE.com"); header(got, "X-Ret") != "1" {
		t.Fatalf("same AOR with the realm prefix:\n%s", got)
	}
	if got := u.request(t, "INVITE", "sip:gina@example.org"); header(got, "X-Ret") != "-1" {
		t.Fatalf("another domain found the binding:\n%s", got)
	}
}

// TestPathAndReceivedReply: Path is echoed when the UA supports path (path_mode 1), a strict registrar
// answers 420 with Unsupported: path otherwise; the received address shows as a Contact parameter.
func TestPathAndReceivedReply(t *testing.T) {
	script := strings.Replace(regScript, "local f = ", "if KSR.hdr.get(\"X-Rcv\") then KSR.pv.sets(\"$avp(RECEIVED)\", KSR.hdr.get(\"X-Rcv\")) end\n\t\tlocal f = ", 1)
	for _, tc := range []struct {
		mode      int
		supported bool
		status    string
		path      bool
	}{
		{1, true, "200 OK", true},
		{1, false, "200 OK", false},
		{2, false, "420 Bad Extension", true},
		{2, true, "200 OK", true},
		{0, true, "200 OK", false},
	} {
		t.Run(fmt.Sprintf("mode%d-supported-%v", tc.mode, tc.supported), func(t *testing.T) {
			p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n", fmt.Sprintf("[modules.registrar]\nuse_path = true\npath_mode = %d\n", tc.mode), 1), script)
			u := newUA(t, p)
			hdrs := []string{"Contact: <sip:hank@10.0.0.5:5070>;expires=120", "Path: <sip:edge1.example.net;lr>, <sip:edge2.example.net;lr>", "X-Rcv: sip:1.2.3.4:5678"}
			if tc.supported {
				hdrs = append(hdrs, "Supported: path")
			}
			got := u.register(t, "hank", 1, hdrs...)
			if status(got) != tc.status {
				t.Fatalf("status %q, want %q\n%s", status(got), tc.status, got)
			}
			wantPath := ""
			if tc.path {
				wantPath = "<sip:edge1.example.net;lr>, <sip:edge2.example.net;lr>"
			}
			if header(got, "Path") != wantPath {
				t.Fatalf("Path %q, want %q\n%s", header(got, "Path"), wantPath, got)
			}
			if c := header(got, "Contact"); c != `<sip:hank@10.0.0.5:5070>;expires=120;received="sip:1.2.3.4:5678"` {
				t.Fatalf("Contact %q", c)
			}
			if tc.status == "420 Bad Extension" && header(got, "Unsupported") != "path" {
				t.Fatalf("no Unsupported: path\n%s", got)
			}
			// lookup: Path wins over received as the destination (Kamailio: the last hop handles NAT)
			got = u.request(t, "INVITE", "sip:hank@example.com")
			if header(got, "X-Du") != "sip:edge1.example.net;lr" {
				t.Fatalf("$du %q, want the first Path hop\n%s", header(got, "X-Du"), got)
			}
		})
	}
}

// TestReplaceAndInstance replays a second Kamailio 5.6 session (min_expires_mode 1): 423 lists the current
// bindings and Min-Expires; flag 0x04 keeps one contact (the last one saved); +sip.instance and reg-id are
// echoed in the Contact list.
func TestReplaceAndInstance(t *testing.T) {
	p := enginetest.Start(t, strings.Replace(regConfig, "[modules.registrar]\n", "[modules.registrar]\nmax_contacts = 2\nmin_expires_mode = 1\n", 1), regScript)
	u := newUA(t, p)
	for i, s := range []struct {
		user    string
		cseq    int
		hdrs    []string
		status  string
		contact string
		ret     string
	}{
		{"pat", 1, []string{"Contact: <sip:p@10.0.0.1>"}, "200 OK", "<sip:p@10.0.0.1>;expires=3600", "1"},
		{"pat", 2, []string{"Contact: <sip:p@10.0.0.2>;expires=10"}, "423 Interval Too Brief", "<sip:p@10.0.0.1>;expires=3600", "-1"},
		{"pat", 3, []string{"Contact: <sip:p@10.0.0.3>;expires=100", "X-Flags: 6"}, "200 OK", "<sip:p@10.0.0.3>;expires=100", "1"},
		{"pat", 4, []string{"Contact: <sip:p@10.0.0.3>;expires=200, <sip:p@10.0.0.4>", "X-Flags: 6"}, "200 OK", "<sip:p@10.0.0.4>;expires=3600", "1"},
		// a contact twice in the REGISTER of a new AOR: the first one stays ...
		{"ron", 1, []string{"Contact: <sip:s@10.0.0.5>, <sip:s@10.0.0.5>;expires=100"}, "200 OK", "<sip:s@10.0.0.5>;expires=3600", "1"},
		// ... but for an AOR with bindings the last one wins (both as Kamailio 5.6 does)
		{"ron", 2, []string{"Contact: <sip:s@10.0.0.5>;expires=200, <sip:s@10.0.0.5>;expires=100"}, "200 OK", "<sip:s@10.0.0.5>;expires=100", "2"},
		{"quinn", 4, []string{"Contact: <sip:q@10.0.0.3>;expires=5"}, "423 Interval Too Brief", "", "-1"},
		{"quinn", 5, []string{`Contact: <sip:q@10.0.0.3>;expires=500;+sip.instance="<urn:uuid:abc>";reg-id=1`}, "200 OK", `<sip:q@10.0.0.3>;expires=500;+sip.instance="<urn:uuid:abc>";reg-id=1`, "1"},
	} {
		hdrs := s.hdrs
		if !strings.Contains(strings.Join(hdrs, "\n"), "X-Flags") {
			hdrs = append(hdrs, "X-Flags: 2")
		}
		got := u.register(t, s.user, s.cseq, hdrs...)
		if status(got) != s.status || header(got, "Contact") != s.contact || header(got, "X-Save") != s.ret {
			t.Fatalf("step %d: got %q Contact %q X-Save %q, want %q %q %q\n%s", i, status(got), header(got, "Contact"),
				header(got, "X-Save"), s.status, s.contact, s.ret, got)
		}
		if s.status == "423 Interval Too Brief" && header(got, "Min-Expires") != "60" {
			t.Fatalf("step %d: Min-Expires %q", i, header(got, "Min-Expires"))
		}
	}
}

// TestStatefulReply: after t_newtran save answers through the transaction (Kamailio's sl freply), so a
// retransmitted REGISTER gets the same 200 from tm (same To tag) and is not saved again.
func TestStatefulReply(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.tm]\n[modules.usrloc]\n[modules.registrar]\n", `
function ksr_request_route()
	if KSR.tm.t_newtran() == 0 then return 1 end
	KSR.registrar.save("location", 0)
end`)
	c := p.UDPClient(t)
	req := c.Request("REGISTER", "sip:example.com", "Contact: <sip:sam@10.0.0.1>")
	req = strings.Replace(req, "To: <sip:example.com>", "To: <sip:sam@example.com>", 1)
	c.Send(req)
	first := string(c.RecvRaw(2 * time.Second))
	c.Send(req)
	second := string(c.RecvRaw(2 * time.Second))
	if status(first) != "200 OK" || first != second {
		t.Fatalf("first:\n%s\nretransmission:\n%s", first, second)
	}
	if header(first, "Contact") != "<sip:sam@10.0.0.1>;expires=3600" {
		t.Fatalf("Contact %q", header(first, "Contact"))
	}
}

// TestMalformedRegister: broken REGISTERs get a 400 with the reason, never a crash or silence.
func TestMalformedRegister(t *testing.T) {
	p := enginetest.Start(t, regConfig, regScript)
	c := p.UDPClient(t)
	base := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP " + c.Addr.String() + ";branch=z9hG4bK%s\r\nFrom: <sip:m@example.com>;tag=1\r\n"
	for i, tc := range []struct{ hdrs, want string }{
		// the engine refuses these before the script runs (its 400 has no P-Registrar-Error)
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: x REGISTER\r\nContact: <sip:m@1.2.3.4>\r\n", ""},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 99999999999 REGISTER\r\nContact: <sip:m@1.2.3.4>\r\n", ""},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@1.2.3.4\r\n", ""},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <>\r\n", ""},
		{"To: <mailto:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@1.2.3.4>\r\n", "Error while parsing AOR"},
		{"To: <sip:m@example.com>\r\nCall-ID: " + strings.Repeat("c", 300) + "\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@1.2.3.4>\r\n", "Callid too long"},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@" + strings.Repeat("h", 600) + ">\r\n", "Contact/received too long"},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nExpires: -5\r\nContact: <sip:m@1.2.3.4>\r\n", "Expires parse error"},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@1.2.3.4>;q=0.1234\r\n", "Invalid q param in contact"},
		{"To: <sip:m@example.com>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: *, <sip:m@1.2.3.4>\r\nExpires: 0\r\n", "* used in contact and more than 1 contact"},
	} {
		c.Send(fmt.Sprintf(base, enginetest.RandHex(6)) + tc.hdrs + "Content-Length: 0\r\n\r\n")
		b, err := c.TryRecv(2 * time.Second)
		if err != nil {
			t.Fatalf("case %d: no reply: %v", i, err)
		}
		got := string(b)
		if status(got) != "400 Bad Request" || header(got, "P-Registrar-Error") != tc.want {
			t.Errorf("case %d: %q %q, want 400 %q", i, status(got), header(got, "P-Registrar-Error"), tc.want)
		}
	}
}
