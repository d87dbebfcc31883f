package pv_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/pv"
)

const invite = "INVITE sip:bob@example.com:5070;transport=tcp SIP/2.0\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1;rport\n" +
	"From: \"Alice A\" <sip:alice@example.org>;tag=ft1\n" +
	"To: Bob <sip:bob@example.net>\n" +
	"Call-ID: pv1@test\n" +
	"CSeq: 17 INVITE\n" +
	"Contact: <sip:alice@127.0.0.1:5099>\n" +
	"User-Agent: TestUA/1\n" +
	"X-Multi: one\n" +
	"X-Multi: two, three\n" +
	"X-Empty:\n" +
	"Max-Forwards: 70\n" +
	"Content-Type: text/plain\n" +
	"Content-Length: 5\n\nhello"

const register = "REGISTER sips:127.0.0.1 SIP/2.0\n" +
	"v: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-2\n" +
	"f: <sip:127.0.0.1>;tag=ft2\n" +
	"t: <tel:+123>;tag=tt2\n" +
	"i: pv2@test\n" +
	"CSeq: 2 REGISTER\n" +
	"Content-Length: 0\n\n"

const reply = "SIP/2.0 202 Accepted Fine\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-3\n" +
	"From: <sip:alice@example.org>;tag=ft3\n" +
	"To: <sip:bob@example.net>;tag=uas3\n" +
	"Call-ID: pv3@test\n" +
	"CSeq: 1 MESSAGE\n" +
	"Contact: <sip:bob@127.0.0.1:16170>\n" +
	"Content-Length: 0\n\n"

type fns struct {
	get, gete, getw func(*engine.Msg, string) engine.Value
	getvn           func(*engine.Msg, string, int) engine.Value
	getvs           func(*engine.Msg, string, string) engine.Value
	geti            func(*engine.Msg, string) int
	sets            func(*engine.Msg, string, string) bool
	seti            func(*engine.Msg, string, int) bool
	unset, isNull   func(*engine.Msg, string) bool
}

func setup(t *testing.T) (*enginetest.Proxy, fns) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	ex := func(n string) any { return p.Export(t, "pv", n) }
	return p, fns{
		get:    ex("get").(func(*engine.Msg, string) engine.Value),
		gete:   ex("gete").(func(*engine.Msg, string) engine.Value),
		getw:   ex("getw").(func(*engine.Msg, string) engine.Value),
		getvn:  ex("getvn").(func(*engine.Msg, string, int) engine.Value),
		getvs:  ex("getvs").(func(*engine.Msg, string, string) engine.Value),
		geti:   ex("geti").(func(*engine.Msg, string) int),
		sets:   ex("sets").(func(*engine.Msg, string, string) bool),
		seti:   ex("seti").(func(*engine.Msg, string, int) bool),
		unset:  ex("unset").(func(*engine.Msg, string) bool),
		isNull: ex("is_null").(func(*engine.Msg, string) bool),
	}
}

var null = engine.Value{}

func s(v string) engine.Value { return engine.StrVal(v) }
func i(v int) engine.Value    { return engine.IntVal(int64(v)) }

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		in, name, arg string
		ok            bool
	}{
		{"$ru", "ru", "", true},
		{"$hdr(X-Foo)", "hdr", "X-Foo", true},
		{"$(hdr(X-Foo))", "hdr", "X-Foo", true},
		{"$(ru)", "ru", "", true},
		{"$T_reply_code", "T_reply_code", "", true},
		{"$var(a(b))", "var", "a(b)", true},
		{"$hdr(X)[1]", "", "", false},
		{"$(hdr(X)[1])", "hdr", "X", true},
		{"$(ru{uri.user}{s.len})", "ru", "", true},
		{"$(ru{no.such})", "", "", false},
		{"$(hdr(X)[x])", "", "", false},
		{"$var(a) x", "", "", false},
		{"$var(", "", "", false},
		{"$var()", "", "", false},
		{"$var(a))", "", "", false},
		{"ru", "", "", false},
		{"$", "", "", false},
		{"", "", "", false},
		{"$()", "", "", false},
	} {
		name, arg, ok := pv.ParseSpec(c.in)
		if name != c.name || arg != c.arg || ok != c.ok {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q, %v", c.in, name, arg, ok, c.name, c.arg, c.ok)
		}
	}
}

func TestGet(t *testing.T) {
	p, f := setup(t)
	inv := enginetest.Msg(t, p, invite)
	reg := enginetest.Msg(t, p, register)
	rpl := enginetest.Msg(t, p, reply)
	rp := int(p.UDP.Port())
	for _, c := range []struct {
		msg  *engine.Msg
		spec string
		want engine.Value
	}{
		{inv, "$ru", s("sip:bob@example.com:5070;transport=tcp")},
		{inv, "$ou", s("sip:bob@example.com:5070;transport=tcp")},
		{inv, "$rU", s("bob")},
		{inv, "$rd", s("example.com")},
		{inv, "$rp", s("5070")},
		{inv, "$rz", s("sip")},
		{inv, "$du", null},
		{inv, "$fu", s("sip:alice@example.org")},
		{inv, "$fU", s("alice")},
		{inv, "$fd", s("example.org")},
		{inv, "$fn", s(`"Alice A"`)},
		{inv, "$ft", s("ft1")},
		{inv, "$tu", s("sip:bob@example.net")},
		{inv, "$tU", s("bob")},
		{inv, "$td", s("example.net")},
		{inv, "$tn", s("Bob")},
		{inv, "$tt", null},
		{inv, "$ci", s("pv1@test")},
		{inv, "$cs", s("17")},
		{inv, "$rm", s("INVITE")},
		{inv, "$rs", null},
		{inv, "$rr", null},
		{inv, "$si", s("127.0.0.1")},
		{inv, "$sp", i(5099)},
		{inv, "$Ri", s("127.0.0.1")},
		{inv, "$Rp", i(rp)},
		{inv, "$pr", s("udp")},
		{inv, "$proto", s("udp")},
		{inv, "$ua", s("TestUA/1")},
		{inv, "$ct", s("<sip:alice@127.0.0.1:5099>")},
		{inv, "$cT", s("text/plain")},
		{inv, "$cl", i(5)},
		{inv, "$ml", i(len(inv.Buf))},
		{inv, "$mb", s(string(inv.Buf))},
		{inv, "$rb", s("hello")},
		{inv, "$mf", i(0)},
		{inv, "$hdr(X-Multi)", s("one")},
		{inv, "$(hdr(x-multi))", s("one")},
		{inv, "$hdr(X-Empty)", s("")},
		{inv, "$hdr(X-None)", null},
		{inv, "$hdr(v)", s("SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1;rport")},
		{inv, "$hdrc(X-Multi)", i(2)},
		{inv, "$var(x)", i(0)},
		{inv, "$avp(x)", null},
		{inv, "$shv(x)", i(0)},
		{inv, "$xyz", null},
		{inv, "nodollar", null},
		{inv, "", null},
		{reg, "$rU", null},
		{reg, "$rp", s("5060")},
		{reg, "$rz", s("sips")},
		{reg, "$fU", null},
		{reg, "$fn", null},
		{reg, "$tU", s("+123")},
		{reg, "$td", null},
		{reg, "$tt", s("tt2")},
		{reg, "$ci", s("pv2@test")},
		{reg, "$ua", null},
		{reg, "$ct", null},
		{reg, "$rb", s("")},
		{reg, "$cl", i(0)},
		{rpl, "$rs", i(202)},
		{rpl, "$rr", s("Accepted Fine")},
		{rpl, "$rm", s("MESSAGE")},
		{rpl, "$ru", null},
		{rpl, "$rU", null},
		{rpl, "$cs", s("1")},
		{rpl, "$tt", s("uas3")},
		{rpl, "$ct", s("<sip:bob@127.0.0.1:16170>")},
	} {
		if got := f.get(c.msg, c.spec); got != c.want {
			t.Errorf("%s get(%q) = %#v, want %#v", c.msg.Method(), c.spec, got, c.want)
		}
	}
}

func TestGetVariants(t *testing.T) {
	p, f := setup(t)
	m := enginetest.Msg(t, p, register)
	for _, c := range []struct {
		name string
		got  engine.Value
		want engine.Value
	}{
		{"gete null", f.gete(m, "$avp(x)"), s("")},
		{"gete str", f.gete(m, "$ci"), s("pv2@test")},
		{"gete int", f.gete(m, "$sp"), i(5099)},
		{"gete bad", f.gete(m, "$xyz"), s("")},
		{"getw null", f.getw(m, "$rU"), s("<null>")},
		{"getw var", f.getw(m, "$var(zz)"), i(0)},
		{"getvn null", f.getvn(m, "$avp(x)", 5), i(5)},
		{"getvn var", f.getvn(m, "$var(x)", 5), i(0)},
		{"getvn hdr", f.getvn(m, "$hdr(X-None)", 7), i(7)},
		{"getvn str", f.getvn(m, "$ci", 7), s("pv2@test")},
		{"getvn bad", f.getvn(m, "nodollar", 4), i(4)},
		{"getvs null", f.getvs(m, "$avp(x)", "dflt"), s("dflt")},
		{"getvs var", f.getvs(m, "$var(x)", "dflt"), i(0)},
		{"getvs bad", f.getvs(m, "$xyz", "d"), s("d")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	for spec, want := range map[string]int{"$cs": 2, "$var(none)": 0, "$avp(none)": 0, "$fU": 0, "$sp": 5099, "$ci": 0} {
		if got := f.geti(m, spec); got != want {
			t.Errorf("geti(%s) = %d, want %d", spec, got, want)
		}
	}
	for spec, want := range map[string]bool{"$avp(x)": true, "$var(x)": false, "$rU": true, "$ci": false, "nodollar": true, "$xyz": true} {
		if got := f.isNull(m, spec); got != want {
			t.Errorf("is_null(%s) = %v, want %v", spec, got, want)
		}
	}
}

// TestSet runs steps in order on one request: each is an assignment and the values read afterwards.
func TestSet(t *testing.T) {
	p, f := setup(t)
	m := enginetest.Msg(t, p, invite)
	type step struct {
		op, spec, val string // op: sets, seti, unset
		ok            bool
		check         map[string]engine.Value
	}
	for n, st := range []step{
		{"sets", "$var(y)", "abc", true, map[string]engine.Value{"$var(y)": s("abc")}},
		{"seti", "$var(n)", "42", true, map[string]engine.Value{"$var(n)": i(42)}},
		{"unset", "$var(n)", "", true, map[string]engine.Value{"$var(n)": i(0)}},
		{"sets", "$var(e)", "", true, map[string]engine.Value{"$var(e)": s("")}},
		{"sets", "$avp(a)", "x1", true, map[string]engine.Value{"$avp(a)": s("x1")}},
		{"sets", "$avp(a)", "x2", true, map[string]engine.Value{"$avp(a)": s("x2")}},
		{"unset", "$avp(a)", "", true, map[string]engine.Value{"$avp(a)": s("x1")}},
		{"unset", "$avp(a)", "", true, map[string]engine.Value{"$avp(a)": null}},
		{"unset", "$avp(a)", "", true, map[string]engine.Value{"$avp(a)": null}},
		{"seti", "$avp(i)", "3", true, map[string]engine.Value{"$avp(i)": i(3)}},
		{"sets", "$shv(s)", "hello", true, map[string]engine.Value{"$shv(s)": s("hello")}},
		{"unset", "$shv(s)", "", true, map[string]engine.Value{"$shv(s)": s("")}}, // Kamailio: "" after unset
		{"sets", "$du", "sip:1.2.3.4:5", true, map[string]engine.Value{"$du": s("sip:1.2.3.4:5")}},
		{"unset", "$du", "", true, map[string]engine.Value{"$du": null}},
		{"seti", "$du", "1", false, map[string]engine.Value{"$du": null}},
		{"sets", "$ru", "sip:carol@example.com:5070;transport=tcp", true, map[string]engine.Value{
			"$ru": s("sip:carol@example.com:5070;transport=tcp"), "$rU": s("carol"), "$rd": s("example.com"), "$rp": s("5070"),
			"$ou": s("sip:bob@example.com:5070;transport=tcp")}},
		{"sets", "$rU", "dave", true, map[string]engine.Value{"$ru": s("sip:dave@example.com:5070;transport=tcp")}},
		{"sets", "$rd", "h.example", true, map[string]engine.Value{"$ru": s("sip:dave@h.example:5070;transport=tcp")}},
		{"sets", "$rp", "5080", true, map[string]engine.Value{"$ru": s("sip:dave@h.example:5080;transport=tcp")}},
		{"seti", "$rp", "5090", true, map[string]engine.Value{"$ru": s("sip:dave@h.example:5090;transport=tcp"), "$rp": s("5090")}},
		{"sets", "$rp", "abc", false, map[string]engine.Value{"$rp": s("5090")}},
		{"unset", "$rp", "", true, map[string]engine.Value{"$ru": s("sip:dave@h.example;transport=tcp"), "$rp": s("5060")}},
		{"unset", "$rU", "", true, map[string]engine.Value{"$ru": s("sip:h.example;transport=tcp"), "$rU": null}},
		{"unset", "$ru", "", false, map[string]engine.Value{"$ru": s("sip:h.example;transport=tcp")}},
		{"seti", "$ru", "1", false, map[string]engine.Value{"$ru": s("sip:h.example;transport=tcp")}},
		// Kamailio's SET_URI_T takes the text unparsed: $ru then reads null (t_relay fails)
		{"sets", "$ru", "sip:a b", true, map[string]engine.Value{"$ru": null, "$rU": null}},
		{"sets", "$ru", "sip:a\r\nX: y", false, map[string]engine.Value{"$ru": null}},
		{"sets", "$ci", "x", true, map[string]engine.Value{"$ci": s("pv1@test")}}, // read-only: no-op, true
		{"unset", "$ci", "", true, map[string]engine.Value{"$ci": s("pv1@test")}},
		{"sets", "nodollar", "x", false, nil},
		{"unset", "nodollar", "", false, nil},
		{"sets", "$xyz", "x", false, nil},
		{"sets", "$var()", "x", false, nil},
	} {
		var ok bool
		switch st.op {
		case "sets":
			ok = f.sets(m, st.spec, st.val)
		case "seti":
			v, _ := strconv.Atoi(st.val)
			ok = f.seti(m, st.spec, v)
		case "unset":
			ok = f.unset(m, st.spec)
		}
		if ok != st.ok {
			t.Errorf("step %d: %s(%s, %q) = %v, want %v", n, st.op, st.spec, st.val, ok, st.ok)
		}
		for spec, want := range st.check {
			if got := f.get(m, spec); got != want {
				t.Errorf("step %d: after %s(%s): get(%s) = %#v, want %#v", n, st.op, st.spec, spec, got, want)
			}
		}
	}
}

// TestScopes: $avp lives for one message, $var for the worker, $shv for every worker.
func TestScopes(t *testing.T) {
	p, f := setup(t)
	m1 := enginetest.Msg(t, p, invite)
	m2 := enginetest.Msg(t, p, invite)
	f.sets(m1, "$avp(a)", "v")
	f.sets(m1, "$shv(s)", "shared")
	if got := f.get(m2, "$avp(a)"); got != null {
		t.Errorf("$avp leaked into another message: %#v", got)
	}
	if got := f.get(m2, "$shv(s)"); got != s("shared") {
		t.Errorf("$shv not shared: %#v", got)
	}
	// concurrent workers
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			m := enginetest.Msg(t, p, invite)
			for k := 0; k < 200; k++ {
				f.seti(m, "$shv(n"+strconv.Itoa(w)+")", k)
				f.get(m, "$shv(s)")
			}
		}(w)
	}
	wg.Wait()
	for w := 0; w < 4; w++ {
		if got := f.get(m1, "$shv(n"+strconv.Itoa(w)+")"); got != i(199) {
			t.Errorf("$shv(n%d) = %#v", w, got)
		}
	}
}
