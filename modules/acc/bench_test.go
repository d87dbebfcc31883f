package acc

import (
	"encoding/json"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// BenchmarkTxRecord: the record of a failed INVITE (what failed_transaction_flag costs the transaction)
// and its JSON line (what the file output writes).
func BenchmarkTxRecord(b *testing.B) {
	buf := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1@h\r\nCSeq: 1 INVITE\r\n\r\n")
	m := &engine.Msg{Buf: buf}
	if err := rawsip.Scan(buf, &m.Raw); err != nil {
		b.Fatal(err)
	}
	a := New()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := a.txRecord("failed", m, 486, "Busy Here", "b1")
		if _, err := r.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRecordJSON(t *testing.T) {
	r := &Record{}
	r.add("a", "plain")
	r.add("q\"b", "back\\slash\ttab\x01 ü")
	r.add("bad", "\xff")
	got, _ := r.MarshalJSON()
	want := `{"a":"plain","q\"b":"back\\slash\u0009tab\u0001 ü","bad":"\ufffd"}`
	if string(got) != want {
		t.Errorf("MarshalJSON = %s\nwant %s", got, want)
	}
	var m map[string]string
	if err := json.Unmarshal(got, &m); err != nil || m["q\"b"] != "back\\slash\ttab\x01 ü" {
		t.Errorf("round trip: %v %v", m, err)
	}
}
