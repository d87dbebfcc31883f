package registrar_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/usrloc"
)

// TestSaveKeepsNoViewOfRequest: save reads the REGISTER without copying it, and the engine reuses a
// message's buffer for the next one, so what the location table keeps must be copies. The buffer is
// overwritten after save; the stored binding (the Redis backend's local cache keeps the registrar's
// strings as they are, and the next save reads them) must still read as registered, and the second
// REGISTER (its text at other offsets of the reused buffer) must update that binding, not add one.
func TestSaveKeepsNoViewOfRequest(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			ul := "[modules.usrloc]\n"
			if backend == "redis" {
				ul += "backend = \"redis\"\nredis_url = \"" + startRedis(t) + "\"\n"
			}
			p := enginetest.Start(t, "[modules.sl]\n"+ul+"[modules.registrar]\n", "function ksr_request_route() end")
			save := p.Export(t, "registrar", "save").(func(*engine.Msg, string, int) int)
			for i, cid := range []string{"first-call@ua", "second-call@ua"} { // an insert, then an update
				m := enginetest.Msg(t, p, "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKv"+strings.Repeat("a", 1+i*7)+"\r\n"+
					"From: <sip:Alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: "+cid+"\r\n"+
					"CSeq: 1 REGISTER\r\nContact: <sip:alice@192.0.2.1:5070;transport=udp>;expires=600;"+
					"+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;received=\"sip:198.51.100.7:4000\"\r\n"+
					"User-Agent: view-test/1\r\nContent-Length: 0\r\n\r\n")
				if rc := save(m, "location", 2); rc != 1+i {
					t.Fatalf("save %d returned %d", i, rc)
				}
				for j := range m.Buf {
					m.Buf[j] = 'x'
				}
				u, err := usrloc.FromEngine(p.E)
				if err != nil {
					t.Fatal(err)
				}
				// What the next save on this node reads (the Redis backend's cache of its own write), then
				// what a lookup reads.
				var bs []usrloc.Binding
				stop := errors.New("read only")
				if err := u.Store().Update("location", "alice", func(cur []usrloc.Binding) ([]usrloc.Binding, error) {
					bs = cur
					return nil, stop
				}); err != stop {
					t.Fatalf("update: %v", err)
				}
				check(t, bs, cid)
				bs, err = u.Store().Lookup("location", "alice")
				if err != nil {
					t.Fatal(err)
				}
				check(t, bs, cid)
			}
		})
	}
}

func check(t *testing.T, bs []usrloc.Binding, cid string) {
	t.Helper()
	if len(bs) != 1 {
		t.Fatalf("%d bindings, want 1: %+v", len(bs), bs)
	}
	b := bs[0]
	want := usrloc.Binding{AOR: "alice", Contact: "sip:alice@192.0.2.1:5070;transport=udp", CallID: cid,
		UserAgent: "view-test/1", Instance: "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>", Received: "sip:198.51.100.7:4000", RegID: 1}
	got := usrloc.Binding{AOR: b.AOR, Contact: b.Contact, CallID: b.CallID, UserAgent: b.UserAgent, Instance: b.Instance,
		Received: b.Received, RegID: b.RegID}
	if got != want {
		t.Fatalf("stored binding after the message buffer was reused:\n got %+v\nwant %+v", got, want)
	}
}
