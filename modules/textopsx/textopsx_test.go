package textopsx_test

import (
	"strings"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// The wire behaviour of every function is compared with Kamailio 5.6.3 in modules/textops
// (TestKamailioWire); these tables cover what a relayed message does not show.

const req = "MESSAGE sip:bob@127.0.0.1 SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\n" +
	"From: <sip:alice@127.0.0.1>;tag=a\n" +
	"To: <sip:bob@127.0.0.1>\n" +
	"Call-ID: tx@test\n" +
	"CSeq: 1 MESSAGE\n" +
	"X-A: one, two\n" +
	"Content-Type: text/plain\n" +
	"Content-Length: 6\n\nline1\n"

const cfg = "[modules.textops]\n[modules.textopsx]\n"

// TestApplyChanges: before msg_apply_changes getters see the received message, after it the changed one,
// and later edits apply to the new text.
func TestApplyChanges(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	m := enginetest.Msg(t, p, req)
	call := func(mod, fn string, args ...any) string {
		t.Helper()
		return enginetest.Call(t, p.Export(t, mod, fn), m, args...)
	}
	steps := []struct {
		mod, fn string
		args    []any
		want    string
	}{
		{"hdr", "append", []any{"X-New: 1\r\n"}, "number:1"},
		{"textops", "replace", []any{"one", "uno"}, "number:1"},
		{"hdr", "get", []any{"X-New"}, "nil:nil"},
		{"textops", "search", []any{"uno"}, "number:-1"},
		{"textopsx", "msg_apply_changes", nil, "number:1"},
		{"hdr", "get", []any{"X-New"}, "string:1"},
		{"hdr", "get", []any{"X-A"}, "string:uno, two"},
		{"textops", "search", []any{"uno"}, "number:1"},
		{"textopsx", "msg_apply_changes", nil, "number:1"}, // nothing pending
		{"textops", "replace", []any{"X-New: 1", "X-New: 2"}, "number:1"},
	}
	for _, s := range steps {
		if got := call(s.mod, s.fn, s.args...); got != s.want {
			t.Fatalf("%s.%s%v = %s, want %s", s.mod, s.fn, s.args, got, s.want)
		}
	}
	out := string(m.Outgoing())
	if !strings.Contains(out, "X-A: uno, two\r\n") || !strings.Contains(out, "X-New: 2\r\n") || strings.Contains(out, "X-New: 1") {
		t.Errorf("outgoing after apply:\n%s", out)
	}
}

// TestSetBuffer: a valid message replaces the current one; garbage, an empty text or a reply in place of
// a request leave it alone with -1.
func TestSetBuffer(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	fn := p.Export(t, "textopsx", "msg_set_buffer")
	for _, c := range []struct {
		buf, want, callID string
	}{
		{"", "number:-1", "tx@test"},
		{"garbage", "number:-1", "tx@test"},
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\nCall-ID: r\r\n\r\n", "number:-1", "tx@test"},
		{strings.ReplaceAll(strings.Replace(req, "tx@test", "new@test", 1), "\n", "\r\n"), "number:1", "new@test"},
	} {
		m := enginetest.Msg(t, p, req)
		if got := enginetest.Call(t, fn, m, c.buf); got != c.want {
			t.Errorf("msg_set_buffer(%.20q) = %s, want %s", c.buf, got, c.want)
		}
		if got, _ := m.Header("Call-ID"); got != c.callID {
			t.Errorf("msg_set_buffer(%.20q): Call-ID %q, want %q", c.buf, got, c.callID)
		}
	}
}

// TestChangeReplyStatusOnRequest: only replies have a status.
func TestChangeReplyStatusOnRequest(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	m := enginetest.Msg(t, p, req)
	if got := enginetest.Call(t, p.Export(t, "textopsx", "change_reply_status"), m, 404, "x"); got != "number:-1" {
		t.Errorf("change_reply_status on a request = %s", got)
	}
	if got := enginetest.Call(t, p.Export(t, "textopsx", "change_reply_status_code"), m, 404); got != "number:-1" {
		t.Errorf("change_reply_status_code on a request = %s", got)
	}
}

// TestIterators: at most 4 iterators of each kind per message (Kamailio's array size), names shorter than
// 32 bytes, the body iterator walks lines with their LF, and an iterator ends at the end.
func TestIterators(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	m := enginetest.Msg(t, p, req)
	call := func(fn string, args ...any) string {
		t.Helper()
		return enginetest.Call(t, p.Export(t, "textopsx", fn), m, args...)
	}
	for i, name := range []string{"a", "b", "c", "d"} {
		if got := call("hf_iterator_start", name); got != "number:1" {
			t.Fatalf("hf_iterator_start #%d = %s", i, got)
		}
	}
	if got := call("hf_iterator_start", "e"); got != "number:-1" {
		t.Errorf("fifth hf iterator = %s, want -1", got)
	}
	if got := call("hf_iterator_start", "a"); got != "number:1" {
		t.Errorf("restarting an iterator = %s", got)
	}
	if got := call("bl_iterator_start", strings.Repeat("x", 32)); got != "number:-1" {
		t.Errorf("32-byte name = %s", got)
	}
	n := 0
	for call("hf_iterator_next", "a") == "number:1" {
		n++
	}
	if n != 8 {
		t.Errorf("hf iterator saw %d headers, want 8", n)
	}
	if got := call("hf_iterator_hname", "a"); got != "nil:nil" {
		t.Errorf("hname at the end = %s", got)
	}
	call("bl_iterator_start", "l")
	if call("bl_iterator_next", "l"); call("bl_iterator_value", "l") != "string:line1\r\n" {
		t.Errorf("body line = %s", call("bl_iterator_value", "l"))
	}
	if got := call("bl_iterator_next", "l"); got != "number:-1" {
		t.Errorf("second body line = %s", got)
	}
}

// TestFnmatch: fnmatch(3) without flags; 0 is Kamailio's "match".
func TestFnmatch(t *testing.T) {
	p := enginetest.Start(t, cfg, "function ksr_request_route() end")
	m := enginetest.Msg(t, p, req)
	fn := p.Export(t, "textopsx", "fnmatch")
	for _, c := range []struct {
		val, pat, want string
	}{
		{"hello", "h*o", "number:0"},
		{"a/b", "a*b", "number:0"},
		{"abc", "a[b-c]c", "number:0"},
		{"abc", "a[!b]c", "number:-1"},
		{"a*c", `a\*c`, "number:0"},
		{"abc", `a\*c`, "number:-1"},
		{"abc", "a?", "number:-1"},
		{"[x", "[x", "number:0"},
		{"Hello", "h*", "number:-1"},
	} {
		if got := enginetest.Call(t, fn, m, c.val, c.pat); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %s, want %s", c.val, c.pat, got, c.want)
		}
	}
}
