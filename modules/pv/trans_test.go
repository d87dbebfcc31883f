package pv_test

import (
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/pv"
)

const viaInvite = "INVITE sip:bob:pw@example.com:5070;transport=tcp;lr SIP/2.0\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5099;branch=z9hG4bK-1;rport=5099;received=10.0.0.9, SIP/2.0/TCP [::1]:5080;branch=z9hG4bK-0\n" +
	"Via: SIP/2.0/TLS proxy.example.net;branch=z9hG4bK-last\n" +
	"From: \"Alice A\" <sip:alice@example.org;user=phone>;tag=ft1;x=y\n" +
	"To: Bob <sip:bob@example.net>\n" +
	"Call-ID: pv1@test\n" +
	"CSeq: 17 INVITE\n" +
	"Contact: <sip:alice@127.0.0.1:5099>;expires=30, <sip:a2@h>\n" +
	"Route: <sip:p1.example.com;lr;ftag=ft1>\n" +
	"P-Asserted-Identity: \"PAI\" <sip:pai@example.org>\n" +
	"Authorization: Digest username=\"alice@example.org\", realm=\"example.org\", nonce=\"n1\", uri=\"sip:example.com\", response=\"r\"\n" +
	"X-P: a=1;b=two;c\n" +
	"X-Multi: one\n" +
	"X-Multi: two\n" +
	"X-Multi: three\n" +
	"Max-Forwards: 70\n" +
	"Content-Length: 5\n\nhello"

// TestTransformations checks index and transformation syntax and the variables added for Kamailio
// scripts; the expected values are Kamailio 5.6's (see kamailio_test.go for the recorded comparison).
func TestTransformations(t *testing.T) {
	p, f := setup(t)
	m := enginetest.Msg(t, p, viaInvite)
	for _, c := range []struct {
		spec string
		want engine.Value
	}{
		{"$(hdr(X-Multi)[0])", s("one")},
		{"$(hdr(X-Multi)[1])", s("two")},
		{"$(hdr(X-Multi)[-1])", s("three")},
		{"$(hdr(X-Multi)[-3])", s("one")},
		{"$(hdr(X-Multi)[3])", null},
		{"$(hdr(X-Multi)[-4])", null},
		{"$(hdr(X-Multi)[*])", s("one,two,three")},
		{"$(hdr(Via)[1])", s("SIP/2.0/TLS proxy.example.net;branch=z9hG4bK-last")},
		{"$(ru{uri.user})", s("bob")},
		{"$(ru{uri.host})", s("example.com")},
		{"$(ru{uri.port})", i(5070)},
		{"$(fu{uri.port})", i(0)},
		{"$(ru{uri.passwd})", s("pw")},
		{"$(ru{uri.transport})", s("tcp")},
		{"$(ru{uri.params})", s("transport=tcp;lr")},
		{"$(ru{uri.param,transport})", s("tcp")},
		{"$(ru{uri.param,none})", s("")},
		{"$(ru{uri.scheme})", s("sip")},
		{"$(ru{uri.saor})", s("sip:bob@example.com")},
		{"$(ru{uri.suri})", s("sip:bob@example.com:5070;transport=tcp")},
		{"$(ru{uri.duri})", s("sip:example.com:5070;transport=tcp")},
		{"$(ru{uri.tosocket})", s("tcp:example.com:5070")},
		{"$(ru{uri.user}{s.len})", i(3)},
		{"$(ru{s.toupper})", s("SIP:BOB:PW@EXAMPLE.COM:5070;TRANSPORT=TCP;LR")},
		{"$(ci{s.tolower}{s.toupper})", s("PV1@TEST")},
		{"$(ci{s.substr,0,3})", s("pv1")},
		{"$(ci{s.substr,4,0})", s("test")},
		{"$(ci{s.substr,-4,2})", s("te")},
		{"$(ci{s.substr,20,1})", null},
		{"$(ci{s.select,1,@})", s("test")},
		{"$(ci{s.select,-1,@})", s("test")},
		{"$(ci{s.select,5,@})", s("")},
		{"$(hdr(X-P){s.select,1,;})", s("b=two")},
		{"$(cs{s.int})", i(17)},
		{"$(ci{s.int})", null},
		{"$(ci{s.strip,4})", s("test")},
		{"$(ci{s.striptail,5})", s("pv1")},
		{"$(ci{s.stripto,@})", s("@test")},
		{"$(ci{s.md5})", s("08688703fd3e0ba2ecef66c4c2036546")},
		{"$(ci{s.encode.hexa})", s("7076314074657374")},
		{"$(ci{s.encode.hexa}{s.decode.hexa})", s("pv1@test")},
		{"$(ci{s.encode.base64}{s.decode.base64})", s("pv1@test")},
		{"$(ci{s.replace,test,x})", s("pv1@x")},
		{"$(ci{s.rm,1@})", s("pvtest")},
		{"$(ci{s.count,t})", i(2)},
		{"$(ci{s.before,@})", s("pv1")},
		{"$(ci{s.after,@})", s("test")},
		{"$(fn{s.unquote})", s("Alice A")},
		{"$(hdr(X-P){param.value,b})", s("two")},
		{"$(hdr(X-P){param.value,c})", s("")},
		{"$(hdr(X-P){param.value,zz})", s("")},
		{"$(hdr(X-P){param.in,a})", i(1)},
		{"$(hdr(X-P){param.in,zz})", i(0)},
		{"$(hdr(X-P){param.count})", i(3)},
		{"$(hdr(X-P){param.name,1})", s("b")},
		{"$(hdr(X-P){param.valueat,0})", s("1")},
		{"$(hdr(From){nameaddr.name})", s("\"Alice A\" ")},
		{"$(hdr(From){nameaddr.uri})", s("sip:alice@example.org;user=phone")},
		{"$(hdr(From){tobody.uri})", s("sip:alice@example.org;user=phone")},
		{"$(hdr(From){tobody.tag})", s("ft1")},
		{"$(hdr(From){tobody.user})", s("alice")},
		{"$(hdr(From){tobody.host})", s("example.org")},
		{"$(hdr(From){tobody.display})", s("\"Alice A\"")},
		{"$(hdr(X-None){s.len})", null},
		{"$(rb{line.count})", s("1")},
		{"$mt", i(1)},
		{"$rv", s("SIP/2.0")},
		{"$via0(host)", s("10.0.0.1")},
		{"$via0(port)", i(5099)},
		{"$via0(proto)", s("UDP")},
		{"$via0(branch)", s("z9hG4bK-1")},
		{"$via0(rport)", s("5099")},
		{"$via0(received)", s("10.0.0.9")},
		{"$via1(host)", s("[::1]")},
		{"$via1(proto)", s("TCP")},
		{"$via1(protoid)", i(2)},
		{"$via1(rport)", null},
		{"$hfl(Via)", s("SIP/2.0/UDP 10.0.0.1:5099;branch=z9hG4bK-1;rport=5099;received=10.0.0.9,")},
		{"$(hfl(Via)[1])", s("SIP/2.0/TCP [::1]:5080;branch=z9hG4bK-0")},
		{"$(hfl(Via)[-1])", null},
		{"$(hfl(Via)[-2])", s("SIP/2.0/TLS proxy.example.net;branch=z9hG4bK-last")},
		{"$(hfl(Contact)[0])", s("<sip:a2@h>")},
		{"$hflc(Via)", i(3)},
		{"$hflc(Contact)", i(2)},
		{"$hflc(X-None)", i(0)},
		{"$nh(u)", s("sip:bob:pw@example.com:5070;transport=tcp;lr")},
		{"$nh(U)", s("bob")},
		{"$nh(d)", s("example.com")},
		{"$nh(p)", s("5070")},
		{"$nh(P)", s("tcp")},
		{"$msg(len)", i(len(enginetest.CRLF(viaInvite)))},
		{"$msg(body)", s("hello")},
		{"$msg(body_len)", i(5)},
		{"$msg(fline)", s("INVITE sip:bob:pw@example.com:5070;transport=tcp;lr SIP/2.0")},
		{"$msg(hdrc)", i(16)},
		{"$dd", null},
		{"$dp", null},
		{"$rP", s("tcp")},
		{"$od", s("example.com")},
		{"$oU", s("bob")},
		{"$op", s("5070")},
		{"$br", null},
		{"$bR", null},
		{"$mF", s("00000000")},
		{"$bF", s("00000000")},
		{"$sf", i(0)},
		{"$sF", s("00000000")},
		{"$su", s("sip:127.0.0.1:5099")},
		{"$fti", s("ft1")},
		{"$tti", null},
		{"$ai", s("sip:pai@example.org")},
		{"$pu", null},
		{"$re", null},
		{"$di", null},
		{"$au", s("alice")},
		{"$ar", s("example.org")},
		{"$adu", s("sip:example.com")},
		{"$rc", i(0)},
		{"$retcode", i(0)},
	} {
		if got := f.get(m, c.spec); got != c.want {
			t.Errorf("get(%q) = %#v, want %#v", c.spec, got, c.want)
		}
	}
}

func TestXavp(t *testing.T) {
	p, f := setup(t)
	m := enginetest.Msg(t, p, viaInvite)
	steps := []struct {
		op, spec, val string
		want          engine.Value
	}{
		{"get", "$xavp(x)", "", null},
		{"sets", "$xavp(x=>a)", "1", null},
		{"sets", "$xavp(x[0]=>b)", "2", null},
		{"get", "$xavp(x=>a)", "", s("1")},
		{"get", "$xavp(x=>b)", "", s("2")},
		{"seti", "$xavp(x=>a)", "7", null}, // a new x at the head
		{"get", "$xavp(x=>a)", "", i(7)},
		{"get", "$xavp(x[1]=>a)", "", s("1")},
		{"get", "$xavp(x[-1]=>b)", "", s("2")},
		{"get", "$xavp(x=>b)", "", null},
		{"sets", "$xavp(x[1]=>a)", "one", null}, // adds a second a to x[1]
		{"get", "$xavp(x[1]=>a[*])", "", s("one, 1")},
		{"unset", "$xavp(x)", "", null},
		{"get", "$xavp(x=>a)", "", s("one")},
		{"sets", "$xavp(y)", "v1", null},
		{"sets", "$xavp(y)", "v2", null},
		{"get", "$xavp(y)", "", s("v2")},
		{"get", "$xavp(y[1])", "", s("v1")},
		{"get", "$(xavp(y)[1])", "", null},
		{"sets", "$xavu(u=>k)", "1", null},
		{"sets", "$xavu(u=>k)", "2", null},
		{"get", "$xavu(u=>k)", "", s("2")},
		{"sets", "$xavi(CI=>Key)", "v", null},
		{"get", "$xavi(ci=>KEY)", "", s("v")},
		{"sets", "$sbranch(uri)", "sip:sb@example.com", null},
		{"get", "$sbranch(uri)", "", s("sip:sb@example.com")},
	}
	for _, st := range steps {
		switch st.op {
		case "get":
			if got := f.get(m, st.spec); got != st.want {
				t.Errorf("get(%q) = %#v, want %#v", st.spec, got, st.want)
			}
		case "sets":
			if !f.sets(m, st.spec, st.val) {
				t.Errorf("sets(%q) failed", st.spec)
			}
		case "seti":
			if !f.seti(m, st.spec, 7) {
				t.Errorf("seti(%q) failed", st.spec)
			}
		case "unset":
			if !f.unset(m, st.spec) {
				t.Errorf("unset(%q) failed", st.spec)
			}
		}
	}
}

// TestPVXExports drives KSR.pvx functions directly.
func TestPVXExports(t *testing.T) {
	p := enginetest.Start(t, "", "function ksr_request_route() end")
	m := enginetest.Msg(t, p, viaInvite)
	call := func(name string, args ...any) string {
		t.Helper()
		return enginetest.Call(t, p.Export(t, "pvx", name), m, args...)
	}
	for _, c := range []struct {
		fn   string
		args []any
		want string
	}{
		{"xavp_get", []any{"r"}, "nil:nil"},
		{"xavp_gete", []any{"r"}, "string:"},
		{"xavp_getw", []any{"r"}, "string:<null>"},
		{"xavp_is_null", []any{"r"}, "number:1"},
		{"xavp_params_explode", []any{"a=1;b=x;c", "r"}, "number:1"},
		{"xavp_child_get", []any{"r", "b"}, "string:x"},
		{"xavp_child_get", []any{"r", "c"}, "string:"},
		{"xavp_child_is_null", []any{"r", "zz"}, "number:1"},
		{"xavp_child_seti", []any{"r", "n", 5}, "number:1"},
		{"xavp_child_get", []any{"r", "n"}, "number:5"},
		{"xavp_params_implode", []any{"r", "$var(out)"}, "number:1"},
		{"var_get", []any{"out"}, "string:n=5;a=1;b=x;c;"},
		{"xavp_child_rm", []any{"r", "n"}, "number:1"},
		{"xavp_child_get", []any{"r", "n"}, "nil:nil"},
		{"xavp_is_null", []any{"r"}, "number:-1"},
		{"xavp_rm", []any{"r"}, "number:1"},
		{"xavp_is_null", []any{"r"}, "number:1"},
		{"xavp_seti", []any{"s", 3}, "number:1"},
		{"xavp_get", []any{"s"}, "number:3"},
		{"xavp_copy", []any{"s", 0, "s2"}, "number:1"},
		{"xavp_get", []any{"s2"}, "number:3"},
		{"xavu_sets", []any{"u", "a"}, "number:1"},
		{"xavu_sets", []any{"u", "b"}, "number:1"},
		{"xavu_get", []any{"u"}, "string:b"},
		{"xavi_sets", []any{"I", "v"}, "number:1"},
		{"xavi_get", []any{"i"}, "string:v"},
		{"avp_sets", []any{"a", "x"}, "number:1"},
		{"avp_seti", []any{"a", 2}, "number:1"},
		{"avp_get", []any{"a"}, "number:2"},
		{"avp_rm", []any{"a"}, "number:1"},
		{"avp_is_null", []any{"a"}, "number:1"},
		{"avp_getw", []any{"a"}, "string:<null>"},
		{"var_seti", []any{"v", 4}, "number:1"},
		{"var_get", []any{"v"}, "number:4"},
		{"shv_sets", []any{"sh", "z"}, "number:1"},
		{"shv_get", []any{"sh"}, "string:z"},
		{"evalx", []any{"$var(e)", "u=$(ru{uri.user}) ci=$ci"}, "number:1"},
		{"var_get", []any{"e"}, "string:u=bob ci=pv1@test"},
		{"pv_var_to_xavp", []any{"v", "vx"}, "number:1"},
		{"xavp_child_get", []any{"vx", "v"}, "number:4"},
		{"sbranch_append", nil, "number:-1"},
	} {
		if got := call(c.fn, c.args...); got != c.want {
			t.Errorf("%s%v = %s, want %s", c.fn, c.args, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, s := range []string{"$(ru{s.substr,1})", "$(ru{s.len", "$(ru", "$(ru{uri.param})", "$(hdr(X)[1]", "$xx(", "$(ru{s.select,a,;})x"} {
		if _, err := pv.Compile(s); err == nil {
			t.Errorf("Compile(%q): no error", s)
		}
	}
	f, err := pv.CompileFormat("a $ru b $(hdr(X){s.len}) c")
	if err != nil || len(f.Specs()) != 2 {
		t.Fatalf("CompileFormat: %v %v", f, err)
	}
}

// TestReplyVars: the variables on a reply.
func TestReplyVars(t *testing.T) {
	p, f := setup(t)
	m := enginetest.Msg(t, p, reply)
	for _, c := range []struct {
		spec string
		want engine.Value
	}{
		{"$mt", i(2)},
		{"$rv", s("SIP/2.0")},
		{"$(rr{s.toupper})", s("ACCEPTED FINE")},
		{"$(rs{s.len})", i(3)},
		{"$bR", null},
		{"$nh(u)", null},
		{"$od", null},
		{"$au", null},
		{"$via0(branch)", s("z9hG4bK-3")},
		{"$(hdr(To){tobody.tag})", s("uas3")},
		{"$msg(fline)", s("SIP/2.0 202 Accepted Fine")},
	} {
		if got := f.get(m, c.spec); got != c.want {
			t.Errorf("get(%q) = %#v, want %#v", c.spec, got, c.want)
		}
	}
}
