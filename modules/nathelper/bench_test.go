package nathelper_test

import (
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

// The functions run on route workers for every request of a NATed UA: they must stay cheap.
func BenchmarkNatUACTest(b *testing.B) {
	p := enginetest.Start(b, cfg, "function ksr_request_route() end")
	fn := p.Export(b, "nathelper", "nat_uac_test").(func(*engine.Msg, int) int)
	m := enginetest.Msg(b, p, request("127.0.0.1:5099", "<sip:alice@10.0.0.9:5060>", "127.0.0.1"))
	b.ReportAllocs()
	for b.Loop() {
		if fn(m, 2|16) != -1 || fn(m, 1) != 1 {
			b.Fatal("unexpected result")
		}
	}
}

func BenchmarkFixNatedContact(b *testing.B) {
	benchContactExport(b, "fix_nated_contact", "<sip:alice@10.0.0.9:5060;transport=udp>;expires=60")
}

func BenchmarkAddContactAlias(b *testing.B) {
	benchContactExport(b, "add_contact_alias", "<sip:alice@10.0.0.9:5060>")
}

// benchContactExport measures an export rewriting the Contact of a request from a NATed phone, the edit
// undone after each call (and the module's per-message state dropped) so that every call does the work.
func benchContactExport(b *testing.B, name, contact string) {
	p := enginetest.Start(b, cfg, "function ksr_request_route() end")
	fn := p.Export(b, "nathelper", name).(func(*engine.Msg) int)
	m := enginetest.Msg(b, p, request("127.0.0.1:5099", contact, ""))
	b.ReportAllocs()
	for b.Loop() {
		mark := m.EditMark()
		m.DelModState("nathelper")
		if fn(m) != 1 {
			b.Fatal(name + " failed")
		}
		m.EditRestore(mark)
	}
}

// BenchmarkOnReplyOther is the cost the keepalive reply filter adds to every reply that is not a keepalive's.
func BenchmarkOnReplyOther(b *testing.B) {
	p := enginetest.Start(b, "[modules.usrloc]\n[modules.nathelper]\nnatping_interval = 30\n", "function ksr_request_route() end")
	inst, _ := p.E.Module("nathelper")
	hook := inst.(engine.ReplyHook)
	m := enginetest.Msg(b, p, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"+
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: abc@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if hook.OnReply(m) {
			b.Fatal("absorbed a reply that is not a keepalive's")
		}
	}
}
