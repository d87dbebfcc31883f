package rtpengine

import (
	"reflect"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

func rawMsg(t *testing.T, s string) *engine.Msg {
	m := &engine.Msg{Buf: []byte(s)}
	if err := rawsip.Scan(m.Buf, &m.Raw); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBuildCommand(t *testing.T) {
	m := rawMsg(t, "INVITE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n")
	got := buildCommand(m, "offer", "trust-address replace-origin replace-session-connection ICE=remove RTP/AVP "+
		"direction=external direction=internal codec-strip-PCMA codec-mask=opus rtcp-mux-demux SDES-off delete-delay=5 label=caller")
	want := map[string]any{"command": "offer", "call-id": "c1", "from-tag": "f1",
		"flags": []any{"trust-address"}, "replace": []any{"origin", "session-connection"}, "ICE": "remove",
		"transport-protocol": "RTP/AVP", "direction": []any{"external", "internal"},
		"codec": map[string]any{"strip": []any{"PCMA"}, "mask": []any{"opus"}}, "rtcp-mux": []any{"demux"},
		"SDES": []any{"off"}, "delete-delay": int64(5), "label": "caller"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buildCommand =\n%#v\nwant\n%#v", got, want)
	}
	m = rawMsg(t, "SIP/2.0 200 OK\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:b@x>;tag=t1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n")
	if got := buildCommand(m, "answer", ""); got["to-tag"] != "t1" || got["from-tag"] != "f1" {
		t.Errorf("answer from a 200: %v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(r *RTPEngine)
		want string
	}{
		{"ok", func(r *RTPEngine) {
			r.Sock = []string{"udp:127.0.0.1:2223", "1 == udp:127.0.0.1:2224=3", "udp:::1:2225"}
		}, ""},
		{"none (functions fail)", func(r *RTPEngine) {}, ""},
		{"tcp", func(r *RTPEngine) { r.Sock = []string{"tcp:127.0.0.1:2223"} }, "only the UDP"},
		{"bad weight", func(r *RTPEngine) { r.Sock = []string{"udp:127.0.0.1:2223=x"} }, "weight"},
		{"timeout", func(r *RTPEngine) { r.Sock = []string{"udp:127.0.0.1:1"}; r.ToutMs = 0 }, "rtpengine_tout_ms"},
		{"inflight", func(r *RTPEngine) { r.Sock = []string{"udp:127.0.0.1:1"}; r.MaxInflight = 0 }, "max_inflight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			tc.set(r)
			err := r.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPickIsStickyAndWeighted(t *testing.T) {
	c := &client{}
	for _, s := range []string{"udp:127.0.0.1:1=1", "udp:127.0.0.1:2=3", "1 == udp:127.0.0.1:3"} {
		in, _ := parseSock(s)
		c.insts = append(c.insts, in)
	}
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		id := "call-" + string(rune('a'+i%26)) + strings.Repeat("x", i%50) + string(rune(i))
		first := c.pick(0, id)
		if len(first) != 2 || c.pick(0, id)[0] != first[0] {
			t.Fatalf("pick(%q) not stable or wrong set: %v", id, first)
		}
		counts[first[0].url]++
	}
	if r := float64(counts["udp:127.0.0.1:2"]) / float64(counts["udp:127.0.0.1:1"]); r < 2 || r > 4.5 {
		t.Errorf("weights 1:3 gave %v", counts)
	}
	if l := c.pick(1, "x"); len(l) != 1 || l[0].url != "udp:127.0.0.1:3" {
		t.Errorf("set 1: %v", l)
	}
}
