package siputils_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestMoreSiputils: the checks and comparisons, with Kamailio 5.6's return codes.
func TestMoreSiputils(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.siputils]\n", enginetest.EvalScript)
	c := p.UDPClient(t)
	cases := []struct{ expr, want string }{
		{`KSR.siputils.is_uri("sip:alice@example.com;transport=tcp")`, "number:1"},
		{`KSR.siputils.is_uri("nonsense")`, "number:-1"},
		{`KSR.siputils.is_numeric("0123")`, "number:1"},
		{`KSR.siputils.is_numeric("12a")`, "number:-2"},
		{`KSR.siputils.is_numeric("")`, "number:-2"},
		{`KSR.siputils.is_tel_number("+4930123")`, "number:1"},
		{`KSR.siputils.is_tel_number("+0123")`, "number:-2"},
		{`KSR.siputils.is_alphanum("abc123")`, "number:1"},
		{`KSR.siputils.is_alphanum("ab-c")`, "number:-3"},
		{`KSR.siputils.is_alphanumex("ab-c.d", "-.")`, "number:1"},
		// a user=phone R-URI: Kamailio looks at the user part's parameters (none here)
		{`KSR.siputils.uri_param("lr")`, "number:-1"},
		{`KSR.siputils.uri_param_value("user", "phone")`, "number:-1"},
		{`KSR.siputils.uri_param_any("USER")`, "number:1"},
		{`KSR.siputils.uri_param_any("gr")`, "number:-1"},
		{`KSR.siputils.is_gruu()`, "number:-1"},
		{`KSR.siputils.cmp_uri("sip:a@Example.com", "sip:a@example.com")`, "number:1"},
		{`KSR.siputils.cmp_uri("sip:a@example.com", "sip:a@example.com:5060")`, "number:-1"},
		{`KSR.siputils.cmp_aor("sip:a@example.com", "sip:a@example.com:5060")`, "number:1"},
		{`KSR.siputils.cmp_uri("sip:a@example.com;transport=tcp", "sip:a@example.com;transport=udp")`, "number:-1"},
		{`KSR.siputils.cmp_uri("sip:a@example.com", "junk")`, "number:-2"},
		{`KSR.siputils.cmp_aor("sip:a@example.com;transport=tcp", "sip:a@EXAMPLE.com")`, "number:1"},
		{`KSR.siputils.cmp_aor("sip:b@example.com", "sip:a@example.com")`, "number:-1"},
		{`KSR.siputils.cmp_hdr_name("v", "Via")`, "number:1"},
		{`KSR.siputils.cmp_hdr_name("From", "To")`, "number:-1"},
		{`KSR.siputils.is_user("alice")`, "number:1"},
		{`KSR.siputils.is_user("bob")`, "number:-1"},
		{`KSR.siputils.hdr_date_check(60)`, "number:-4"},
		{`KSR.siputils.is_first_hop_mode(0)`, "number:1"},
		{`KSR.siputils.add_uri_param("x=1") .. KSR.kx.get_ruri()`, "string:1sip:carol@127.0.0.1;user=phone;lr;x=1"},
		{`KSR.siputils.uri_param_rm("user") .. KSR.kx.get_ruri()`, "string:1sip:carol@127.0.0.1;lr;x=1"},
		{`KSR.siputils.contact_param_decode_ruri("addr")`, "number:-1"},
		{`KSR.siputils.uri_param_rm("lr") .. KSR.siputils.uri_param("x") .. KSR.siputils.uri_param_value("x", "1")`, "string:1-11"},
	}
	exprs := make([]string, len(cases))
	for i, cs := range cases {
		exprs[i] = cs.expr
	}
	got := c.Eval("INVITE", "sip:carol@127.0.0.1;user=phone;lr", []string{
		`Authorization: Digest username="alice", realm="r", nonce="n", uri="sip:x", response="0"`,
		"Date: Sat, 13 Nov 2010 23:29:00 GMT",
	}, exprs...)
	for i, cs := range cases {
		if got[i] != cs.want {
			t.Errorf("%s = %s, want %s", cs.expr, got[i], cs.want)
		}
	}
}

// TestContactEncoding: contact_param_encode / encode_contact change the relayed Contact, and the decoders
// give the original back (R-URI of the next request, Contact of the reply path).
func TestContactEncoding(t *testing.T) {
	p := enginetest.Start(t, "[modules.sl]\n[modules.siputils]\n", `
function ksr_request_route()
	if KSR.is_OPTIONS() then KSR.siputils.options_reply() return end
	local mode = KSR.hdr.get("X-Mode")
	if mode == "param" then KSR.siputils.contact_param_encode("addr", "sip:127.0.0.1:5999") end
	if mode == "decode-ruri" then KSR.siputils.contact_param_decode_ruri("addr") end
	if mode == "encode" then KSR.siputils.encode_contact("enc", "192.0.2.9") end
	if mode == "decode" then KSR.siputils.decode_contact() KSR.siputils.decode_contact_header() end
	if mode == "rm" then KSR.siputils.contact_param_rm("addr") end
	KSR.forward_uri(KSR.hdr.get("X-Dst"))
end`)
	c, uas := p.UDPClient(t), p.UDPClient(t)
	dst := "X-Dst: sip:" + uas.Addr.String()
	send := func(method, ruri string, hdrs ...string) string {
		t.Helper()
		c.Send(c.Request(method, ruri, append([]string{dst}, hdrs...)...))
		return string(uas.RecvRaw(2 * time.Second))
	}
	contact := func(raw string) string {
		for _, l := range strings.Split(raw, "\r\n") {
			if strings.HasPrefix(l, "Contact: ") {
				return strings.TrimPrefix(l, "Contact: ")
			}
		}
		return ""
	}
	orig := "sip:alice@10.0.0.5:5070;transport=tcp"
	enc := base64.RawURLEncoding.EncodeToString([]byte(orig))
	got := send("MESSAGE", "sip:bob@127.0.0.1", "X-Mode: param", "Contact: <"+orig+">;expires=60")
	if want := "<sip:127.0.0.1:5999;addr=" + enc + ">;expires=60"; contact(got) != want {
		t.Errorf("contact_param_encode: Contact %q, want %q", contact(got), want)
	}
	got = send("MESSAGE", "sip:127.0.0.1:5999;addr="+enc, "X-Mode: decode-ruri")
	if !strings.HasPrefix(got, "MESSAGE "+orig+" SIP/2.0") {
		t.Errorf("contact_param_decode_ruri: %q", strings.SplitN(got, "\r\n", 2)[0])
	}
	got = send("MESSAGE", "sip:bob@127.0.0.1", "X-Mode: rm", "Contact: <sip:x@127.0.0.1;addr=abc;lr>")
	if contact(got) != "<sip:x@127.0.0.1;lr>" {
		t.Errorf("contact_param_rm: %q", contact(got))
	}
	got = send("MESSAGE", "sip:bob@127.0.0.1", "X-Mode: encode", "Contact: <"+orig+">")
	want := "<sip:enc*alice**10.0.0.5*5070*tcp@192.0.2.9;transport=tcp>"
	if contact(got) != want {
		t.Errorf("encode_contact: %q, want %q", contact(got), want)
	}
	got = send("MESSAGE", "sip:enc*alice**10.0.0.5*5070*tcp@127.0.0.1;transport=tcp", "X-Mode: decode",
		"Contact: "+want)
	if !strings.HasPrefix(got, "MESSAGE "+orig+" SIP/2.0") || contact(got) != "<"+orig+">" {
		t.Errorf("decode_contact: %q / Contact %q", strings.SplitN(got, "\r\n", 2)[0], contact(got))
	}

	c.Send(c.Request("OPTIONS", "sip:127.0.0.1"))
	r := string(c.RecvRaw(2 * time.Second))
	if !strings.HasPrefix(r, "SIP/2.0 200 OK\r\n") || !strings.Contains(r, "\r\nAccept: */*\r\n") ||
		!strings.Contains(r, "\r\nAccept-Language: en\r\n") {
		t.Errorf("options_reply:\n%s", r)
	}
}
