package pv_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// TestKamailioValues: values where siplua used to differ from Kamailio 5.6 (measured side by side by
// luabind/enginetest/kamdiff): $cl without Content-Length is null, $cs stops at a TAB, $rz of a user=phone
// URI is tel and its $rU the number alone, pv.geti reads a leading number.
func TestKamailioValues(t *testing.T) {
	p, f := setup(t)
	noCL := enginetest.Msg(t, p, "OPTIONS sip:+49123;phone-context=x@example.com;user=phone SIP/2.0\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-k1\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>\n"+
		"Call-ID: k1@test\nCSeq: 9\tOPTIONS\nX-N: 12abc\nX-M: -7 apples\nX-Z: abc\n\n")
	for spec, want := range map[string]any{
		"$cl": null, "$cs": s("9"), "$rz": s("tel"), "$rU": s("+49123"), "$rd": s("example.com"),
	} {
		if got := f.get(noCL, spec); got != want {
			t.Errorf("%s = %#v, want %#v", spec, got, want)
		}
	}
	for spec, want := range map[string]int{"$hdr(X-N)": 12, "$hdr(X-M)": -7, "$hdr(X-Z)": 0, "$hdr(X-None)": 0} {
		if got := f.geti(noCL, spec); got != want {
			t.Errorf("geti(%s) = %d, want %d", spec, got, want)
		}
	}
}

// TestAssignFromTo: assigning $fu, $fU, $fd, $fn, $tu, $tU, $td, $tn rewrites From/To of the request sent
// on, as Kamailio does (the values read in the script stay those received).
func TestAssignFromTo(t *testing.T) {
	uas := enginetest.NewUDPClient(t, netipZero())
	p := enginetest.Start(t, "[modules.sl]\n", `
function ksr_request_route()
	local spec, val = KSR.hdr.get("X-Spec"), KSR.hdr.get("X-Val")
	KSR.pv.sets(spec, val)
	KSR.hdr.append("X-Read: " .. tostring(KSR.pv.get(spec)) .. "\r\n")
	KSR.forward_uri("sip:" .. KSR.hdr.get("X-Dst"))
end`)
	c := p.UDPClient(t)
	for _, tc := range []struct{ spec, val, to, hdr, want string }{
		{"$fu", "sip:new@example.org", "<sip:b@y>", "From", `"Alice" <sip:new@example.org>;tag=ft1`},
		{"$fU", "carol", "<sip:b@y>", "From", `"Alice" <sip:carol@127.0.0.1:5099>;tag=ft1`},
		{"$fd", "example.org", "<sip:b@y>", "From", `"Alice" <sip:alice@example.org:5099>;tag=ft1`},
		{"$fn", "New Name", "<sip:b@y>", "From", `New Name <sip:alice@127.0.0.1:5099>;tag=ft1`},
		{"$tu", "sip:to@example.org", `"Bob" <sip:b@y>;x=1`, "To", `"Bob" <sip:to@example.org>;x=1`},
		{"$tU", "dave", "sip:b@y", "To", `sip:dave@y`},
		{"$td", "h.example", "<sip:b@y:5070>", "To", `<sip:b@h.example:5070>`},
		{"$tn", "To Name", "<sip:b@y>", "To", `To Name <sip:b@y>`},
		{"$tn", "To Name", "sip:b@y;tag=2", "To", `To Name <sip:b@y>;tag=2`},
	} {
		raw := "MESSAGE sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP " + c.Addr.String() + ";branch=z9hG4bK" + enginetest.RandHex(6) + "\r\n" +
			"From: \"Alice\" <sip:alice@127.0.0.1:5099>;tag=ft1\r\nTo: " + tc.to + "\r\nCall-ID: " + enginetest.RandHex(6) + "\r\n" +
			"CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nX-Spec: " + tc.spec + "\r\nX-Val: " + tc.val + "\r\nX-Dst: " + uas.Addr.String() +
			"\r\nContent-Length: 0\r\n\r\n"
		c.Send(raw)
		got := string(uas.RecvRaw(3 * time.Second))
		if h := headerValue(got, tc.hdr); h != tc.want {
			t.Errorf("%s = %q: %s on the wire %q, want %q", tc.spec, tc.val, tc.hdr, h, tc.want)
		}
		if h := headerValue(got, "X-Read"); strings.Contains(h, tc.val) {
			t.Errorf("%s read back %q after the assignment: Kamailio reads the header as received", tc.spec, h)
		}
	}
}

func headerValue(raw, name string) string {
	for _, l := range strings.Split(raw, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func netipZero() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:9") }
