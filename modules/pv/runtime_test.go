package pv_test

import (
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/pv"
)

// TestUnknownLoggedOnce: an unknown variable used by every message is logged once, not per use.
func TestUnknownLoggedOnce(t *testing.T) {
	p := enginetest.Start(t, "[core]\nworkers = 2\n[modules.sl]\n", `
function ksr_request_route()
	KSR.pv.get("$nosuch")
	KSR.pv.get("$nosuch")
	KSR.pv.get("$(ru{s.bad})")
	KSR.xlog.xinfo("x $alsonot\n")
	KSR.sl.sl_send_reply(200, "OK")
end`)
	c := p.UDPClient(t)
	for i := 0; i < 20; i++ {
		c.Send(c.Request("OPTIONS", "sip:a@127.0.0.1"))
		c.RecvRaw(3e9)
	}
	log := p.Log.String()
	for _, s := range []string{"pv=$nosuch\n", "pv=$alsonot\n", "pv=$(ru{s.bad})"} {
		if n := strings.Count(log, s); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", s, n, log)
		}
	}
}

// TestXlogOutput: xlog renders the format with variables and transformations, through slog with
// module=xlog, at the level asked; kex.setdebug sets the level for the rest of the message (the harness
// logs at debug, so the test lowers it to warn) and resetdebug goes back to the process level.
func TestXlogOutput(t *testing.T) {
	p := enginetest.Start(t, "[core]\nworkers = 1\nlog_level = \"info\"\n[modules.sl]\n", `
function ksr_request_route()
	KSR.xlog.xinfo("req $rm to $(ru{uri.user}) hdr=$(hdr(X-A)[-1]) none=$avp(x)\n")
	KSR.kex.setdebug(0)
	KSR.xlog.xinfo("hidden info\n")
	KSR.xlog.xdbg("hidden debug\n")
	KSR.xlog.xlog("L_WARN", "warned\n")
	KSR.kex.resetdebug()
	KSR.xlog.xdbg("shown debug $ci\n")
	KSR.sl.sl_send_reply(200, "OK")
end`)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:bob@127.0.0.1", "X-A: 1", "X-A: 2"))
	c.RecvRaw(3e9)
	log := p.Log.String()
	for _, want := range []string{
		`level=INFO msg="req OPTIONS to bob hdr=2 none=<null>" module=xlog`,
		`level=DEBUG msg="shown debug `,
		`level=WARN msg=warned module=xlog`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, not := range []string{"hidden debug", "hidden info"} {
		if strings.Contains(log, not) {
			t.Errorf("log has %q", not)
		}
	}
}

var benchSpecs = []string{"$ru", "$(ru{uri.user})", "$(hdr(Via)[1])", "$(fu{uri.host}{s.tolower})", "$var(x)"}

// BenchmarkGet reads cached specs: the parse happens once, a plain variable costs no allocation.
func BenchmarkGet(b *testing.B) {
	p := enginetest.Start(b, "", "function ksr_request_route() end")
	get := p.Export(b, "pv", "get").(func(*engine.Msg, string) engine.Value)
	m := enginetest.Msg(b, p, viaInvite)
	for _, s := range append(benchSpecs, "$ci") {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				get(m, s)
			}
		})
	}
}

// BenchmarkCompile is the one-time parse the cache saves.
func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, s := range benchSpecs {
			if _, err := pv.Compile(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// FuzzCompile: no spec crashes the parser, and a valid spec compiles the same way twice.
func FuzzCompile(f *testing.F) {
	for _, s := range append(benchSpecs, "$(hdr(X)[*]{s.select,1,,})", "$(ci{s.substr,$var(i),2})", "$xavp(a[0]=>b[*])",
		"$(x{param.value,a,;})", "$((", "$(a[$(b[$(c)])])", "${}", "$(ru{s.len}") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := pv.Compile(s)
		if err != nil {
			return
		}
		if sp.Name == "" || sp.Raw != s {
			t.Fatalf("Compile(%q) = %+v", s, sp)
		}
		_, _ = pv.CompileFormat("x " + s + " y")
	})
}

// FuzzEval: evaluating any spec (transformations with odd parameters, indexes) on a message never panics.
func FuzzEval(f *testing.F) {
	for _, s := range []string{"$(ci{s.substr,-9,1})", "$(hdr(X-P){param.valueat,-5})", "$(ci{s.select,-3,@})",
		"$(ru{uri.param,x}{s.decode.hexa})", "$(hdr(X-P){s.unescape.user})", "$(hfl(Via)[-9])", "$(ci{line.at,-2})",
		"$xavp(a[-3]=>b[*])", "$(ci{s.prefixes,0}{s.escape.param})", "$(fn{nameaddr.uri}{tobody.tag})"} {
		f.Add(s)
	}
	p := enginetest.Start(f, "", "function ksr_request_route() end")
	get := p.Export(f, "pv", "get").(func(*engine.Msg, string) engine.Value)
	set := p.Export(f, "pv", "sets").(func(*engine.Msg, string, string) bool)
	m := enginetest.Msg(f, p, viaInvite)
	f.Fuzz(func(t *testing.T, s string) {
		get(m, s)
		set(m, s, "%41x")
		get(m, s)
	})
}

// BenchmarkRender is an xlog line with three variables and a transformation (format cached).
func BenchmarkRender(b *testing.B) {
	p := enginetest.Start(b, "", "function ksr_request_route() end")
	inst, _ := p.E.Module("pv")
	pvm := inst.(*pv.PV)
	m := enginetest.Msg(b, p, viaInvite)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		pvm.Render(m, "call $ci from $(fu{uri.user}) cseq $cs\n")
	}
}
