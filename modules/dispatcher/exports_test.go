package dispatcher_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

const exportsCfg = `[modules.pv]
[modules.dispatcher]
flags = 2
setid_pvname = "$avp(dsid)"
attrs_pvname = "$avp(dsattrs)"
[[modules.dispatcher.dst]]
set = 1
uri = "sip:10.0.0.1:5080"
attrs = "duid=one"
[[modules.dispatcher.dst]]
set = 1
uri = "sip:10.0.0.2;transport=tcp"
[[modules.dispatcher.dst]]
set = 1
uri = "sip:10.0.0.3:5090"
priority = 9
[[modules.dispatcher.dst]]
set = 7
uri = "sip:127.0.0.1"
attrs = "peer=me"
`

const invite = "INVITE sip:bob@example.net;user=phone SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\n" +
	"From: <sip:alice@example.org>;tag=1\nTo: <sip:bob@example.net>\nCall-ID: abc@x\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n"

func TestExports(t *testing.T) {
	p := enginetest.Start(t, exportsCfg, "function ksr_request_route() end")
	fn := func(name string) any { return p.Export(t, "dispatcher", name) }
	call := func(m *engine.Msg, name string, args ...any) string { return enginetest.Call(t, fn(name), m, args...) }

	t.Run("serial order and failover", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		if r := call(m, "ds_select_dst", 1, 8); r != "number:1" || m.DstURI != "sip:10.0.0.3:5090" {
			t.Fatalf("ds_select_dst(1, 8) = %s, $du %s", r, m.DstURI)
		}
		// equal priorities in reverse file order, as Kamailio
		for _, want := range []string{"sip:10.0.0.2;transport=tcp", "sip:10.0.0.1:5080"} {
			if r := call(m, "ds_next_dst"); r != "number:1" || m.DstURI != want {
				t.Fatalf("ds_next_dst = %s, $du %s, want %s", r, m.DstURI, want)
			}
		}
		if r := call(m, "ds_next_dst"); r != "number:-1" {
			t.Fatalf("ds_next_dst past the end = %s", r)
		}
	})
	t.Run("limit", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		call(m, "ds_select_dst_limit", 1, 8, 2)
		call(m, "ds_next_dst")
		if r := call(m, "ds_next_dst"); r != "number:-1" {
			t.Fatalf("a limit of 2 left a third destination: %s", r)
		}
	})
	t.Run("domain", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		if r := call(m, "ds_select_domain", 1, 8); r != "number:1" || m.NewURI != "sip:bob@10.0.0.3:5090" || m.DstURI != "" {
			t.Fatalf("ds_select_domain = %s, $ru %s, $du %q", r, m.NewURI, m.DstURI)
		}
		if r := call(m, "ds_next_domain"); r != "number:1" || m.NewURI != "sip:bob@10.0.0.2;transport=tcp" {
			t.Fatalf("ds_next_domain = %s, $ru %s", r, m.NewURI)
		}
	})
	t.Run("parallel", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		if r := call(m, "ds_select_dst", 1, 12); r != "number:1" || m.DstURI != "sip:10.0.0.3:5090" {
			t.Fatalf("ds_select_dst(1, 12) = %s, $du %s", r, m.DstURI)
		}
		var got []string
		for _, b := range m.Branches {
			got = append(got, b.URI+" via "+b.DstURI)
		}
		want := "sip:bob@example.net;user=phone via sip:10.0.0.2;transport=tcp, sip:bob@example.net;user=phone via sip:10.0.0.1:5080"
		if strings.Join(got, ", ") != want {
			t.Errorf("branches %q, want %q", strings.Join(got, ", "), want)
		}
		m = enginetest.Msg(t, p, invite)
		call(m, "ds_select_domain", 1, 12)
		if len(m.Branches) != 2 || m.Branches[0].URI != "sip:bob@10.0.0.2;transport=tcp" || m.Branches[0].DstURI != "" {
			t.Errorf("domain branches %+v", m.Branches)
		}
	})
	t.Run("xavp only, then set", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		if r := call(m, "ds_select", 1, 8); r != "number:1" || m.DstURI != "" {
			t.Fatalf("ds_select = %s, $du %q", r, m.DstURI)
		}
		if r := call(m, "ds_set_dst"); r != "number:1" || m.DstURI != "sip:10.0.0.3:5090" {
			t.Fatalf("ds_set_dst = %s, $du %s", r, m.DstURI)
		}
	})
	t.Run("errors", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		for _, c := range []struct {
			name string
			args []any
		}{
			{"ds_select_dst", []any{5, 4}},  // no such set
			{"ds_select_dst", []any{1, 10}}, // call load needs dialog
			{"ds_select_dst", []any{1, 99}}, // unknown algorithm
			{"ds_next_dst", nil},            // nothing selected
			{"ds_mark_dst", nil},
			{"ds_mark_dst_state", []any{"zz"}},
			{"ds_list_exists", []any{5}},
			{"ds_is_active", []any{5}},
			{"ds_select_routes", []any{"1=4", "q"}},
			{"ds_load_update", nil},
		} {
			if r := call(m, c.name, c.args...); r != "number:-1" {
				t.Errorf("%s%v = %s, want -1", c.name, c.args, r)
			}
		}
	})
	t.Run("mark and active", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		call(m, "ds_select_dst", 1, 8)
		if r := call(m, "ds_mark_dst_state", "ip"); r != "number:1" {
			t.Fatalf("ds_mark_dst_state = %s", r)
		}
		if r := call(m, "ds_is_active_uri", 1, "sip:10.0.0.3:5090"); r != "number:-1" {
			t.Errorf("marked destination still active: %s", r)
		}
		if r := call(m, "ds_is_active", 1); r != "number:1" {
			t.Errorf("ds_is_active(1) = %s", r)
		}
		m2 := enginetest.Msg(t, p, invite)
		if call(m2, "ds_select_dst", 1, 8); m2.DstURI != "sip:10.0.0.2;transport=tcp" {
			t.Errorf("an inactive destination was selected: %s", m2.DstURI)
		}
		if _, err := rpcOf(t, p, "dispatcher.set_state")([]string{"a", "1", "all"}); err != nil {
			t.Fatal(err)
		}
		if r := call(m, "ds_is_active_uri", 1, "sip:10.0.0.3:5090"); r != "number:1" {
			t.Errorf("dispatcher.set_state a 1 all did not activate: %s", r)
		}
		if _, err := rpcOf(t, p, "dispatcher.set_state")([]string{"d", "1", "one"}); err != nil { // by duid
			t.Fatal(err)
		}
		if r := call(m, "ds_is_active_uri", 1, "sip:10.0.0.1:5080"); r != "number:-1" {
			t.Errorf("disabled by duid, still active: %s", r)
		}
		if _, err := rpcOf(t, p, "dispatcher.set_state")([]string{"a", "1", "sip:nowhere"}); err == nil {
			t.Error("set_state of an unknown destination: no error")
		}
	})
	t.Run("force_dst", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		m.DstURI = "sip:preset"
		if r := call(m, "ds_select_dst", 1, 8); r != "number:1" { // force_dst = 1 (Kamailio's default)
			t.Errorf("ds_select_dst over a set $du = %s", r)
		}
	})
	t.Run("is from list", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite) // from 127.0.0.1:5099 over UDP
		for _, c := range []struct {
			name string
			args []any
			want string
		}{
			{"ds_is_from_list", []any{7}, "number:1"},
			{"ds_is_from_list", []any{1}, "number:-1"},
			{"ds_is_from_list_mode", []any{7, 0}, "number:-1"}, // the URI names no transport: Kamailio matches none
			{"ds_is_from_list_mode", []any{7, 2}, "number:1"},
			{"ds_is_from_list_uri", []any{1, 0, "sip:10.0.0.1:5080"}, "number:1"},
			{"ds_is_from_list_uri", []any{1, 0, "sip:10.0.0.1:5081"}, "number:-1"},
			{"ds_is_from_list_uri", []any{1, 1, "sip:10.0.0.1:5081"}, "number:1"},
			{"ds_is_from_list_uri", []any{1, 0, "sip:10.0.0.2;transport=tcp"}, "number:1"},
			{"ds_is_from_list_uri", []any{1, 0, "sip:10.0.0.2;transport=udp"}, "number:-1"},
			{"ds_is_from_list_uri", []any{1, 2, "sip:host.example"}, "number:-1"}, // no DNS on a worker
			{"ds_list_exists", []any{7}, "number:1"},
		} {
			if r := call(m, c.name, c.args...); r != c.want {
				t.Errorf("%s%v = %s, want %s", c.name, c.args, r, c.want)
			}
		}
		m = enginetest.Msg(t, p, invite)
		if r := call(m, "ds_is_from_lists"); r != "number:1" {
			t.Fatalf("ds_is_from_lists = %s", r)
		}
		if v := m.AVPs["dsid"]; len(v) != 1 || v[0].I != 7 {
			t.Errorf("$avp(dsid) = %v, want 7", v)
		}
		if v := m.AVPs["dsattrs"]; len(v) != 1 || v[0].S != "peer=me" {
			t.Errorf("$avp(dsattrs) = %v, want peer=me", v)
		}
	})
	t.Run("select routes", func(t *testing.T) {
		m := enginetest.Msg(t, p, invite)
		if r := call(m, "ds_select_routes", "5=4;7=8;1=8", "d"); r != "number:1" || m.DstURI != "sip:127.0.0.1" {
			t.Fatalf("ds_select_routes = %s, $du %s", r, m.DstURI)
		}
		if call(m, "ds_next_dst"); m.DstURI != "sip:10.0.0.3:5090" {
			t.Errorf("the next rule's destinations do not follow: %s", m.DstURI)
		}
	})
	t.Run("list", func(t *testing.T) {
		res, err := rpcOf(t, p, "dispatcher.list")(nil)
		if err != nil {
			t.Fatal(err)
		}
		r := res.(map[string]any)
		if r["NRSETS"] != 2 || !strings.Contains(fmtAny(r), "duid=one") {
			t.Errorf("dispatcher.list = %v", r)
		}
	})
}

func fmtAny(v any) string { return fmt.Sprint(v) }

func rpcOf(t *testing.T, p *enginetest.Proxy, name string) func([]string) (any, error) {
	return rpc(t, p, name)
}
