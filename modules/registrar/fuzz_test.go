package registrar_test

import (
	"net/netip"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// FuzzSave: any To, Contact, Expires and Path a REGISTER can carry past the engine's parser gives save a
// return code, never a panic; a lookup of the same AOR afterwards does not panic either.
func FuzzSave(f *testing.F) {
	p := enginetest.Start(f, "[modules.sl]\n[modules.usrloc]\n[modules.registrar]\nuse_path = true\n", "function ksr_request_route() end")
	save := p.Export(f, "registrar", "save").(func(*engine.Msg, string, int) int)
	lookup := p.Export(f, "registrar", "lookup_uri").(func(*engine.Msg, string, string) int)
	f.Add("<sip:a@example.com>", "<sip:a@1.2.3.4>;q=0.5;expires=60", "3600", "<sip:p;lr>")
	f.Add("sip:a@example.com", "*", "0", "")
	f.Add("\"A\" <sip:%41@x>;tag=1", "<sip:a@[::1]:5060;transport=tcp>;+sip.instance=\"<urn:x>\";reg-id=1, <sip:b@c>;expires=0", "", "<sip:x>,<sip:y;received=sip:1.1.1.1>")
	f.Fuzz(func(t *testing.T, to, contact, expires, path string) {
		raw := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKf\r\n" +
			"From: <sip:a@example.com>;tag=1\r\nTo: " + to + "\r\nCall-ID: fuzz\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: " + contact + "\r\n"
		if expires != "" {
			raw += "Expires: " + expires + "\r\n"
		}
		if path != "" {
			raw += "Path: " + path + "\r\n"
		}
		raw += "Content-Length: 0\r\n\r\n"
		m, err := p.E.NewMsg([]byte(raw), netip.MustParseAddrPort("127.0.0.1:5099"), engine.UDP)
		if err != nil {
			return
		}
		if rc := save(m, "location", 2); rc == 0 || rc < -2 || rc > 4 {
			t.Fatalf("save returned %d", rc)
		}
		if rc := lookup(m, "location", "sip:a@example.com"); rc != 1 && rc != -1 && rc != -3 {
			t.Fatalf("lookup returned %d", rc)
		}
	})
}
