package pv_test

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
)

// The expressions below run in Kamailio 5.6.3 (app_lua, enginetest.EvalScript) and in siplua on the same
// raw request; Kamailio's answers are recorded in testdata/kamailio_pv.txt. Re-record with
//
//	go test ./modules/pv/ -run TestKamailioPV -record-kamailio
//
// (needs the Debian kamailio and kamailio-lua-modules packages).
var recordKamailio = flag.Bool("record-kamailio", false, "run Kamailio 5.6 and record testdata/kamailio_pv.txt")

const kamRequest = "INVITE sip:bob:pw@example.com:5070;transport=tcp;lr SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-kam1;i=7\r\n" +
	"Via: SIP/2.0/TCP [::1]:5080;branch=z9hG4bK-0;received=10.0.0.9, SIP/2.0/TLS proxy.example.net;branch=z9hG4bK-last\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"Alice A\" <sip:alice@example.org;user=phone>;tag=ft1;x=y\r\n" +
	"To: Bob <sip:bob@example.net>\r\n" +
	"Call-ID: pv1@test\r\n" +
	"CSeq: 17 INVITE\r\n" +
	"Contact: <sip:alice@127.0.0.1:5099>;expires=30, <sip:a2@h>\r\n" +
	"Route: <sip:p1.example.com;lr;ftag=ft1>\r\n" +
	"P-Asserted-Identity: \"PAI\" <sip:pai@example.org>\r\n" +
	"Diversion: <sip:div@example.org>;reason=unconditional\r\n" +
	"Remote-Party-ID: \"RP\" <sip:rpid@example.org>;party=calling\r\n" +
	"Authorization: Digest username=\"alice@example.org\", realm=\"example.org\", nonce=\"n1\", uri=\"sip:example.com\", response=\"r\"\r\n" +
	"X-P: a=1;b=two;c\r\n" +
	"X-Multi: one\r\n" +
	"X-Multi: two\r\n" +
	"X-Multi: three\r\n" +
	"X-Num: 42\r\n" +
	"X-Pad:   padded  \r\n" +
	"EVALS" +
	"Content-Length: 0\r\n\r\n"

var kamExprs = []string{
	// indexes
	`KSR.pv.get("$(hdr(X-Multi)[0])")`, `KSR.pv.get("$(hdr(X-Multi)[1])")`, `KSR.pv.get("$(hdr(X-Multi)[-1])")`,
	`KSR.pv.get("$(hdr(X-Multi)[-3])")`, `KSR.pv.get("$(hdr(X-Multi)[3])")`, `KSR.pv.get("$(hdr(X-Multi)[-4])")`,
	`KSR.pv.get("$(hdr(X-Multi)[*])")`, `KSR.pv.get("$(hdr(Via)[1])")`,
	// transformations
	`KSR.pv.get("$(ru{uri.user})")`, `KSR.pv.get("$(ru{uri.host})")`, `KSR.pv.get("$(ru{uri.port})")`,
	`KSR.pv.get("$(fu{uri.port})")`, `KSR.pv.get("$(ru{uri.passwd})")`, `KSR.pv.get("$(ru{uri.transport})")`,
	`KSR.pv.get("$(ru{uri.params})")`, `KSR.pv.get("$(ru{uri.param,transport})")`, `KSR.pv.get("$(ru{uri.param,none})")`,
	`KSR.pv.get("$(ru{uri.scheme})")`, `KSR.pv.get("$(ru{uri.saor})")`, `KSR.pv.get("$(ru{uri.suri})")`,
	`KSR.pv.get("$(ru{uri.duri})")`, `KSR.pv.get("$(ru{uri.tosocket})")`, `KSR.pv.get("$(ru{uri.user}{s.len})")`,
	`KSR.pv.get("$(ru{s.toupper})")`, `KSR.pv.get("$(ci{s.tolower}{s.toupper})")`, `KSR.pv.get("$(ci{s.substr,0,3})")`,
	`KSR.pv.get("$(ci{s.substr,4,0})")`, `KSR.pv.get("$(ci{s.substr,-4,2})")`, `KSR.pv.get("$(ci{s.substr,20,1})")`,
	`KSR.pv.get("$(ci{s.select,1,@})")`, `KSR.pv.get("$(ci{s.select,-1,@})")`, `KSR.pv.get("$(ci{s.select,5,@})")`,
	`KSR.pv.get("$(hdr(X-P){s.select,1,;})")`, `KSR.pv.get("$(cs{s.int})")`, `KSR.pv.get("$(ci{s.int})")`,
	`KSR.pv.get("$(hdr(X-Num){s.int})")`, `KSR.pv.get("$(ci{s.strip,4})")`, `KSR.pv.get("$(ci{s.striptail,5})")`,
	`KSR.pv.get("$(ci{s.stripto,@})")`, `KSR.pv.get("$(ci{s.md5})")`, `KSR.pv.get("$(ci{s.sha256})")`,
	`KSR.pv.get("$(ci{s.encode.hexa})")`, `KSR.pv.get("$(ci{s.encode.base64})")`,
	`KSR.pv.get("$(ci{s.encode.base64}{s.decode.base64})")`, `KSR.pv.get("$(ci{s.replace,test,x})")`,
	`KSR.pv.get("$(ci{s.rm,1@})")`, `KSR.pv.get("$(ci{s.count,t})")`, `KSR.pv.get("$(ci{s.before,@})")`,
	`KSR.pv.get("$(ci{s.after,@})")`, `KSR.pv.get("$(fn{s.unquote})")`, `KSR.pv.get("$(hdr(X-Pad){s.trim})")`,
	`KSR.pv.get("$(hdr(X-Num){s.prefixes})")`, `KSR.pv.get("$(ci{s.escape.common})")`,
	`KSR.pv.get("$(hdr(X-P){param.value,b})")`, `KSR.pv.get("$(hdr(X-P){param.value,c})")`,
	`KSR.pv.get("$(hdr(X-P){param.value,zz})")`, `KSR.pv.get("$(hdr(X-P){param.in,a})")`,
	`KSR.pv.get("$(hdr(X-P){param.in,zz})")`, `KSR.pv.get("$(hdr(X-P){param.count})")`,
	`KSR.pv.get("$(hdr(X-P){param.name,1})")`, `KSR.pv.get("$(hdr(X-P){param.valueat,0})")`,
	`KSR.pv.get("$(hdr(From){nameaddr.name})")`, `KSR.pv.get("$(hdr(From){nameaddr.uri})")`,
	`KSR.pv.get("$(hdr(From){nameaddr.len})")`,
	`KSR.pv.get("$(hdr(From){tobody.uri})")`, `KSR.pv.get("$(hdr(From){tobody.tag})")`,
	`KSR.pv.get("$(hdr(From){tobody.user})")`, `KSR.pv.get("$(hdr(From){tobody.host})")`,
	`KSR.pv.get("$(hdr(From){tobody.display})")`, `KSR.pv.get("$(hdr(From){tobody.params})")`,
	`KSR.pv.get("$(hdr(X-None){s.len})")`, `KSR.pv.get("$(cs{s.len})")`, `KSR.pv.get("$(cs{s.int}{s.len})")`,
	`KSR.pv.gete("$(hdr(X-None){s.len})")`, `KSR.pv.is_null("$(hdr(X-None){s.len})")`,
	// variables issue 12 lists
	`KSR.pv.get("$mt")`, `KSR.pv.get("$rv")`, `KSR.pv.get("$rc")`, `KSR.pv.get("$retcode")`,
	`KSR.pv.get("$via0(host)")`, `KSR.pv.get("$via0(port)")`, `KSR.pv.get("$via0(proto)")`,
	`KSR.pv.get("$via0(branch)")`, `KSR.pv.get("$via0(rport)")`, `KSR.pv.get("$via0(i)")`,
	`KSR.pv.get("$via0(protoid)")`, `KSR.pv.get("$via1(host)")`, `KSR.pv.get("$via1(port)")`,
	`KSR.pv.get("$via1(proto)")`, `KSR.pv.get("$via1(received)")`, `KSR.pv.get("$via1(rport)")`,
	`KSR.pv.get("$hfl(Via)")`, `KSR.pv.get("$(hfl(Via)[1])")`, `KSR.pv.get("$(hfl(Via)[-1])")`,
	`KSR.pv.get("$hflc(Via)")`, `KSR.pv.get("$hflc(Contact)")`, `KSR.pv.get("$hflc(X-Multi)")`,
	`KSR.pv.get("$hflc(X-None)")`, `KSR.pv.get("$(hfl(Contact)[1])")`,
	`KSR.pv.get("$nh(u)")`, `KSR.pv.get("$nh(U)")`, `KSR.pv.get("$nh(d)")`, `KSR.pv.get("$nh(p)")`, `KSR.pv.get("$nh(P)")`,
	`KSR.pv.get("$msg(body)")`, `KSR.pv.get("$msg(body_len)")`, `KSR.pv.get("$msg(fline)")`,
	`KSR.pv.get("$dd")`, `KSR.pv.get("$dp")`, `KSR.pv.get("$dP")`, `KSR.pv.get("$rP")`,
	`KSR.pv.get("$od")`, `KSR.pv.get("$oU")`, `KSR.pv.get("$op")`, `KSR.pv.get("$br")`, `KSR.pv.get("$bR")`,
	`KSR.pv.get("$mF")`, `KSR.pv.get("$bF")`, `KSR.pv.get("$sf")`, `KSR.pv.get("$sF")`,
	`KSR.pv.get("$su")`, `KSR.pv.get("$Ru")`, `KSR.pv.get("$RAi")`, `KSR.pv.get("$fti")`, `KSR.pv.get("$tti")`,
	`KSR.pv.get("$ai")`, `KSR.pv.get("$pu")`, `KSR.pv.get("$re")`, `KSR.pv.get("$di")`,
	`KSR.pv.get("$au")`, `KSR.pv.get("$ar")`, `KSR.pv.get("$adu")`,
	`KSR.setflag(3)`, `KSR.pv.get("$mF")`, `KSR.setbflag(4)`, `KSR.pv.get("$bF")`,
	`KSR.pv.sets("$du", "sip:dst.example.com;transport=tls")`, `KSR.pv.get("$dd")`, `KSR.pv.get("$dp")`,
	`KSR.pv.get("$dP")`, `KSR.pv.get("$nh(u)")`, `KSR.pv.get("$nh(p)")`, `KSR.pv.get("$nh(P)")`,
	// xavp through pv and pvx
	`KSR.pv.get("$xavp(x)")`, `KSR.pv.sets("$xavp(x=>a)", "1")`, `KSR.pv.sets("$xavp(x[0]=>b)", "2")`,
	`KSR.pv.get("$xavp(x=>a)")`, `KSR.pv.get("$xavp(x=>b)")`, `KSR.pv.seti("$xavp(x=>a)", 7)`,
	`KSR.pv.get("$xavp(x=>a)")`, `KSR.pv.get("$xavp(x[1]=>a)")`, `KSR.pv.get("$xavp(x[-1]=>b)")`,
	`KSR.pv.get("$xavp(x=>b)")`, `KSR.pv.sets("$xavp(x[1]=>a)", "one")`, `KSR.pv.get("$xavp(x[1]=>a[*])")`,
	`KSR.pv.unset("$xavp(x)")`, `KSR.pv.get("$xavp(x=>a)")`,
	`KSR.pv.sets("$xavp(y)", "v1")`, `KSR.pv.sets("$xavp(y)", "v2")`, `KSR.pv.get("$xavp(y)")`,
	`KSR.pv.get("$xavp(y[1])")`, `KSR.pv.get("$(xavp(y)[1])")`,
	`KSR.pv.sets("$xavu(u=>k)", "1")`, `KSR.pv.sets("$xavu(u=>k)", "2")`, `KSR.pv.get("$xavu(u=>k)")`,
	`KSR.pv.sets("$xavi(CI=>Key)", "v")`, `KSR.pv.get("$xavi(ci=>KEY)")`,
	`KSR.pvx.xavp_get("r")`, `KSR.pvx.xavp_gete("r")`, `KSR.pvx.xavp_getw("r")`, `KSR.pvx.xavp_is_null("r")`,
	`KSR.pvx.xavp_params_explode("a=1;b=x;c", "r")`, `KSR.pvx.xavp_child_get("r", "b")`,
	`KSR.pvx.xavp_child_get("r", "c")`, `KSR.pvx.xavp_child_is_null("r", "zz")`,
	`KSR.pvx.xavp_child_seti("r", "n", 5)`, `KSR.pvx.xavp_child_get("r", "n")`,
	`KSR.pvx.xavp_params_implode("r", "$var(out)")`, `KSR.pv.get("$var(out)")`,
	`KSR.pvx.xavp_child_rm("r", "n")`, `KSR.pvx.xavp_child_get("r", "n")`, `KSR.pvx.xavp_is_null("r")`,
	`KSR.pvx.xavp_rm("r")`, `KSR.pvx.xavp_is_null("r")`, `KSR.pvx.xavp_seti("s", 3)`, `KSR.pvx.xavp_get("s")`,
	`KSR.pvx.xavp_copy("s", 0, "s2")`, `KSR.pvx.xavp_get("s2")`,
	`KSR.pvx.xavu_sets("u2", "a")`, `KSR.pvx.xavu_sets("u2", "b")`, `KSR.pvx.xavu_get("u2")`,
	`KSR.pvx.xavi_sets("I", "v")`, `KSR.pvx.xavi_get("i")`,
	`KSR.pvx.avp_sets("a", "x")`, `KSR.pvx.avp_seti("a", 2)`, `KSR.pvx.avp_get("a")`,
	`KSR.pv.get("$(avp(a)[1])")`, `KSR.pv.get("$(avp(a)[*])")`,
	`KSR.pvx.avp_rm("a")`, `KSR.pvx.avp_is_null("a")`, `KSR.pvx.avp_getw("a")`, `KSR.pvx.avp_gete("a")`,
	`KSR.pvx.var_seti("v", 4)`, `KSR.pvx.var_get("v")`, `KSR.pvx.var_get("never")`,
	`KSR.pvx.shv_sets("sh", "z")`, `KSR.pvx.shv_get("sh")`,
	`KSR.pvx.evalx("$var(e)", "u=$(ru{uri.user}) ci=$ci n=$avp(none)")`, `KSR.pv.get("$var(e)")`,
	`KSR.pvx.pv_var_to_xavp("v", "vx")`, `KSR.pvx.xavp_child_get("vx", "v")`,
	`KSR.pvx.sbranch_append()`, `KSR.pv.sets("$sbranch(uri)", "sip:sb@example.com")`, `KSR.pv.get("$sbranch(uri)")`,
	`KSR.pvx.sbranch_append()`, `KSR.pv.get("$br")`, `KSR.pv.get("$bR")`, `KSR.pvx.sbranch_reset()`,
	`KSR.pv.get("$sbranch(uri)")`,
	// xlog and kex
	`KSR.xlog.xinfo("xlog $ru $(ru{uri.user})\n")`, `KSR.xlog.xlog("L_ERR", "x $ci\n")`, `KSR.xlog.xdbg("d\n")`,
	`KSR.kex.setdebug(3)`, `KSR.kex.resetdebug()`,
	// invalid specs
	`KSR.pv.get("$(ru{no.such})")`, `KSR.pv.get("$nosuchvar")`, `KSR.pv.sets("$(var(t){s.len})", "x")`,
	`KSR.pv.get("$var(t)")`,
	// more index forms
	`KSR.pv.get("$(hfl(Via)[-2])")`, `KSR.pv.get("$(hfl(Via)[2])")`, `KSR.pv.get("$(hfl(Via)[*])")`,
	`KSR.pv.get("$(hfl(Contact)[0])")`, `KSR.pv.get("$(hfl(Route)[0])")`, `KSR.pv.get("$(hfl(X-Multi)[1])")`,
	`KSR.pv.get("$(hdr(X-Multi)[$var(v)])")`, `KSR.pv.get("$(ci{s.substr,$var(v),2})")`,
	`KSR.pv.get("$(hdr(X-P){param.value,$var(nope)})")`, `KSR.pv.get("$(hdr(Via)[0]{s.len})")`,
	`KSR.pv.get("$(ru{uri.user}{s.toupper}{s.substr,1,1})")`, `KSR.pv.getvs("$(hdr(X-None){s.len})", "dflt")`,
	`KSR.pv.getvn("$(hdr(X-Num){s.int})", 9)`,
}

// kamExprs2 go in a second request (Kamailio answers at most 256 X-Eval headers of one request).
var kamExprs2 = []string{
	`KSR.pv.get("$(hdr(X-Pad){s.rmws})")`, `KSR.pv.get("$(hdr(Contact){s.unbracket})")`, `KSR.pv.get("$(ru{s.numeric})")`,
	`KSR.pv.get("$(fn{s.urlencode.param})")`, `KSR.pv.get("$(fn{s.escape.user})")`, `KSR.pv.get("$(fn{s.escape.param})")`,
	`KSR.pv.get("$(hdr(X-Num){s.prefixes.quoted})")`, `KSR.pv.get("$(hdr(X-Num){s.prefixes,1})")`,
	`KSR.pv.get("$(fn{s.escape.common}{s.unescape.common})")`, `KSR.pv.get("$(fn{s.escape.common})")`,
	`KSR.pv.get("$(ci{s.encode.hexa}{s.decode.hexa})")`, `KSR.pv.get("$(ci{s.sha384})")`, `KSR.pv.get("$(ci{s.sha512})")`,
	`KSR.pv.get("$(fu{uri.uparam})")`, `KSR.pv.get("$(ru{uri.lr})")`, `KSR.pv.get("$(ru{uri.maddr})")`,
	`KSR.pv.get("$(ru{uri.headers})")`, `KSR.pv.get("$(hdr(X-P){param.count,;})")`,
	`KSR.pv.get("$(hdr(X-P){param.value,b,;})")`, `KSR.pv.get("$(hdr(To){tobody.display})")`,
	`KSR.pv.get("$(hdr(To){tobody.tag})")`, `KSR.pv.get("$(hdr(To){tobody.params})")`,
	`KSR.pv.get("$(hdr(X-Pad){s.ltrim})")`, `KSR.pv.get("$(hdr(X-Pad){s.rtrim})")`,
	`KSR.pv.get("$(ci{s.substr,-20,1})")`, `KSR.pv.get("$(ci{s.strip,0})")`, `KSR.pv.get("$(ci{s.strip,99})")`,
	`KSR.pv.get("$(ci{s.stripto,#})")`, `KSR.pv.get("$(ci{s.after,#})")`, `KSR.pv.get("$(ci{s.before,#})")`,
	`KSR.pv.get("$(hdr(X-Num){s.int}{s.tolower})")`, `KSR.pv.get("$(hdr(X-Num){s.unquote})")`,
	`KSR.pv.get("$(hdr(X-Multi)[*]{s.count,,})")`, `KSR.pv.get("$(hdr(X-Multi)[*]{s.select,2,,})")`,
	`KSR.pv.get("$(ru{uri.param,lr})")`, `KSR.pv.get("$(ru{uri.transport}{s.toupper})")`,
	`KSR.pv.get("$(msg(fline){line.count})")`, `KSR.pv.get("$(hdr(X-None){s.len})")`,
	// val.* arrived after 5.6: invalid there, so nil
	`KSR.pv.get("$(avp(none){val.n0})")`, `KSR.pv.get("$(avp(none){val.ne})")`, `KSR.pv.get("$(avp(none){val.json})")`,
	`KSR.pv.get("$(avp(none){val.jsonqe})")`, `KSR.pv.get("$(ci{val.n0})")`, `KSR.pv.get("$(fn{val.json})")`,
	`KSR.pv.get("$(fn{val.jsonqe})")`, `KSR.pv.get("$(ci{val.jsonqe})")`, `KSR.pv.get("$(cs{s.int}{val.jsonqe})")`,
	`KSR.pv.get("$(avp(none){val.n0}{s.len})")`,
	`KSR.pvx.xavp_slist_explode(" a, b ,,c ", ",", "t", "sl")`, `KSR.pv.get("$xavp(sl=>v)")`,
	`KSR.pv.get("$xavp(sl=>v[1])")`, `KSR.pv.get("$xavp(sl=>v[2])")`, `KSR.pv.get("$xavp(sl=>v[3])")`,
	`KSR.pvx.xavp_slist_explode("x;y", ";", "", "sl")`, `KSR.pv.get("$xavp(sl[1]=>v)")`,
	`KSR.pvx.xavp_seti("cp", 1)`, `KSR.pvx.xavp_seti("cp", 2)`, `KSR.pvx.xavp_copy_dst("cp", 1, "cp", 0)`,
	`KSR.pv.get("$xavp(cp[0])")`, `KSR.pv.get("$xavp(cp[2])")`, `KSR.pv.get("$xavp(cp[3])")`,
	`KSR.pvx.xavu_params_explode("p=1;q=2", "up")`, `KSR.pvx.xavu_child_get("up", "q")`,
	`KSR.pvx.xavu_params_implode("up", "$var(ui)")`, `KSR.pv.get("$var(ui)")`,
	`KSR.pvx.xavu_child_sets("up", "q", "3")`, `KSR.pvx.xavu_child_get("up", "q")`,
	`KSR.pvx.xavi_child_sets("IP", "K", "3")`, `KSR.pvx.xavi_child_get("ip", "k")`, `KSR.pvx.xavi_child_gete("ip", "zz")`,
	`KSR.pvx.xavu_rm("up")`, `KSR.pvx.xavu_is_null("up")`, `KSR.pvx.xavp_getw("nothere")`,
	`KSR.pvx.pv_xavp_to_var("r2")`, `KSR.pvx.xavp_params_explode("va=1;vb=x", "r2")`, `KSR.pvx.pv_xavp_to_var("r2")`,
	`KSR.pv.get("$var(va)")`, `KSR.pv.get("$var(vb)")`,
	`KSR.pvx.pv_xavp_print()`, `KSR.pvx.pv_xavu_print()`, `KSR.pvx.pv_xavi_print()`,
	`KSR.pvx.avp_rm("nope")`, `KSR.pvx.var_sets("vs", "s")`, `KSR.pvx.var_get("vs")`,
	`KSR.pvx.sbranch_set_ruri()`, `KSR.pv.sets("$sbranch(uri)", "sip:sb2@example.com")`, `KSR.pvx.sbranch_set_ruri()`,
	`KSR.pv.get("$ru")`, `KSR.pv.get("$ou")`,
	// tables, serialized with sorted keys
	`KSR.pvx.xavp_params_explode("a=1;b=2;a=3", "dd")`,
	`KSR.pvx.xavp_child_seti("dd", "n", 9)`,
	`KSR.pvx.xavp_params_explode("z=0", "dd")`,
	`KSR.pvx.xavi_child_sets("DD2", "K", "1")`,
	tableExpr(`KSR.pvx.xavp_getd("dd")`),
	tableExpr(`KSR.pvx.xavp_getd_p1("dd", 0)`),
	tableExpr(`KSR.pvx.xavp_getd_p1("dd", -1)`),
	tableExpr(`KSR.pvx.xavp_get_keys("dd", 0)`),
	tableExpr(`KSR.pvx.xavp_get_keys("dd", 1)`),
	tableExpr(`KSR.pvx.xavi_get_keys("dd2", 0)`),
}

// kamRequest3 is an in-dialog request from the callee (upstream: the Route's ftag is the caller's tag).
const kamRequest3 = "BYE sip:alice@127.0.0.1:5999 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-kam3\r\n" +
	"Max-Forwards: 70\r\n" +
	"Route: <sip:127.0.0.1:SPORT;lr;ftag=ft1>\r\n" +
	"From: <sip:bob@example.net>;tag=tt1\r\n" +
	"To: <sip:alice@example.org>;tag=ft1\r\n" +
	"Call-ID: pv3@test\r\n" +
	"CSeq: 2 BYE\r\n" +
	"EVALS" +
	"Content-Length: 0\r\n\r\n"

var kamExprs3 = []string{
	`KSR.pv.get("$fti")`, `KSR.pv.get("$tti")`, `KSR.rr.loose_route()`, `KSR.rr.is_direction("upstream")`,
	`KSR.pv.get("$fti")`, `KSR.pv.get("$tti")`, `KSR.pv.get("$rdir(name)")`, `KSR.pv.get("$(hfl(Route)[0])")`,
	`KSR.pv.get("$hflc(Route)")`, `KSR.pv.seti("$mF", 5)`, `KSR.pv.get("$mF")`, `KSR.isflagset(2)`,
	`KSR.pv.sets("$mF", "7")`, `KSR.pv.get("$mF")`, `KSR.pv.seti("$bF", 18)`, `KSR.pv.get("$bF")`, `KSR.isbflagset(4)`,
}

// knownDiffs are expressions where siplua deliberately differs from Kamailio 5.6, with the reason.
var knownDiffs = map[string]string{
	`KSR.pv.get("$(hdr(X-Pad){s.ltrim})")`: "siplua trims trailing whitespace of header values (README: Differences from Kamailio)",
	`KSR.pv.get("$(ru{uri.saor})")`:        "Kamailio 5.6 puts a NUL byte after the scheme (sip:\x00bob@...)",
	`KSR.pv.get("$(ru{uri.suri})")`:        "Kamailio 5.6 puts a NUL byte after the scheme",
	`KSR.pv.get("$(ru{uri.duri})")`:        "Kamailio 5.6 puts a NUL byte after the scheme",
	`KSR.pvx.shv_sets("sh", "z")`:          "Kamailio only sets a $shv declared with modparam(pv, shvset); siplua has no declaration and creates it",
	`KSR.pvx.shv_get("sh")`:                "follows from shv_sets above",
	`KSR.pvx.xavu_child_get("up", "q")`: "Kamailio 5.6's xavu_params_explode puts the parameters in the root xavu list " +
		"(it passes an empty child list, which xavu_set_xval reads as the root): siplua makes them children as documented",
	`KSR.pvx.xavu_params_implode("up", "$var(ui)")`: "follows from xavu_params_explode above",
	`KSR.pv.get("$var(ui)")`:                        "follows from xavu_params_explode above",
	tableExpr(`KSR.pvx.xavp_getd("dd")`): "Kamailio 5.6 chains each value's table into the next one's, so the first " +
		"table holds the keys of every later value; siplua gives one table per value (xavi_getd and xavi_getd_p1 " +
		"abort app_lua with \"BUG: vtype is NONE\" and are not compared)",
}

type kamResult struct{ expr, result string }

// evalRaw sends kamRequest with the expressions to addr and returns the results in order.
func evalRaw(t *testing.T, addr netip.AddrPort, exprs []string) []string {
	return evalReq(t, addr, kamRequest, exprs)
}

// evalReq sends the request template req (EVALS is replaced by the X-Eval headers, SPORT by the
// server's port) to addr and returns the results in order.
func evalReq(t *testing.T, addr netip.AddrPort, req string, exprs []string) []string {
	t.Helper()
	var ev strings.Builder
	for _, e := range exprs {
		ev.WriteString("X-Eval: " + e + "\r\n")
	}
	raw := strings.Replace(req, "EVALS", ev.String(), 1)
	raw = strings.ReplaceAll(raw, "SPORT", fmt.Sprint(addr.Port()))
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	myPort := fmt.Sprint(conn.LocalAddr().(*net.UDPAddr).Port)
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no reply from %s: %v", addr, err)
		}
		head, _, _ := strings.Cut(string(buf[:n]), "\r\n\r\n")
		if !strings.HasPrefix(head, "SIP/2.0 200") {
			continue
		}
		var out []string
		for _, l := range strings.Split(head, "\r\n") {
			if v, ok := strings.CutPrefix(l, "X-Result: "); ok {
				v = strings.ReplaceAll(v, ":"+myPort, ":PORT")                                      // $su
				out = append(out, strings.ReplaceAll(v, fmt.Sprintf(":%d", addr.Port()), ":SPORT")) // $Ru
			}
		}
		if len(out) != len(exprs) {
			t.Fatalf("%d results for %d expressions:\n%s", len(out), len(exprs), head)
		}
		return out
	}
}

const kamCfg = enginetest.KamailioGlobals + `debug=2
udp4_raw=0
loadmodule "kex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "SCRIPT")
cfgengine "lua"
`

const goldenPath = "testdata/kamailio_pv.txt"

// TestKamailioPV compares siplua with Kamailio's recorded answers, expression by expression.
func TestKamailioPV(t *testing.T) {
	if *recordKamailio {
		recordGolden(t)
	}
	want := readGolden(t)
	p := enginetest.Start(t, "[core]\nworkers = 1\n[modules.sl]\n[modules.rr]\n", enginetest.EvalScript)
	got := append(evalRaw(t, p.UDP, kamExprs), evalRaw(t, p.UDP, kamExprs2)...)
	got = append(got, evalReq(t, p.UDP, kamRequest3, kamExprs3)...)
	exprs := append(append(append([]string{}, kamExprs...), kamExprs2...), kamExprs3...)
	same, known := 0, 0
	if len(want) != len(exprs) {
		t.Fatalf("%d recorded results for %d expressions: re-record with -record-kamailio", len(want), len(exprs))
	}
	for i, e := range exprs {
		w, ok := want[i].result, want[i].expr == e
		switch {
		case knownDiffs[e] != "":
			known++
			if got[i] != w {
				t.Logf("known difference: %s = %q, Kamailio %q: %s", e, got[i], w, knownDiffs[e])
			}
		case !ok:
			t.Errorf("%s: recorded result %d is for %s (re-record)", e, i, want[i].expr)
		case got[i] != w:
			t.Errorf("%s = %s, Kamailio gives %s", e, got[i], w)
		default:
			same++
		}
	}
	t.Logf("%d of %d expressions give Kamailio's value; %d known differences", same, len(exprs), known)
}

func recordGolden(t *testing.T) {
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"); err != nil {
		t.Fatalf("recording needs kamailio's app_lua: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(enginetest.EvalScript), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := enginetest.RunKamailio(t, dir, strings.ReplaceAll(kamCfg, "SCRIPT", script))
	res := append(evalRaw(t, addr, kamExprs), evalRaw(t, addr, kamExprs2)...)
	res = append(res, evalReq(t, addr, kamRequest3, kamExprs3)...)
	exprs := append(append(append([]string{}, kamExprs...), kamExprs2...), kamExprs3...)
	var b strings.Builder
	b.WriteString("# Kamailio 5.6.3 (app_lua) answers to modules/pv/kamailio_test.go's expressions: expr TAB type:value.\n")
	b.WriteString("# Re-record: go test ./modules/pv/ -run TestKamailioPV -record-kamailio\n")
	for i, e := range exprs {
		fmt.Fprintf(&b, "%s\t%s\n", e, res[i])
	}
	if err := os.WriteFile(goldenPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T) []kamResult {
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatalf("%v (record it with -record-kamailio)", err)
	}
	defer f.Close()
	var out []kamResult
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if e, r, ok := strings.Cut(line, "\t"); ok {
			out = append(out, kamResult{e, r})
		}
	}
	return out
}

// tableExpr wraps a call returning a table in a Lua serializer (sorted keys, typed leaves), so the table
// compares as text.
func tableExpr(call string) string {
	return `(function(t) local function s(v) if type(v) ~= 'table' then return type(v) .. ':' .. tostring(v) end ` +
		`local ks = {} for k in pairs(v) do ks[#ks + 1] = k end ` +
		`table.sort(ks, function(a, b) return tostring(a) < tostring(b) end) local o = {} ` +
		`for _, k in ipairs(ks) do o[#o + 1] = tostring(k) .. '=' .. s(v[k]) end ` +
		`return '{' .. table.concat(o, ';') .. '}' end return s(t) end)(` + call + `)`
}
