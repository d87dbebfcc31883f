package luabind_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	"github.com/siplua/siplua/luabind/enginetest"
	lua "github.com/yuin/gopher-lua"
)

// ksrFn is one KSR function of a state, by its full name.
type ksrFn struct {
	name string
	fn   lua.LValue
}

// fuzzRig is an engine with every module loaded and one Lua state whose KSR functions are called directly.
type fuzzRig struct {
	e    *engine.Engine
	st   *luabind.State
	fns  []ksrFn
	msgs [][]byte
}

// skipped functions resolve the host they are given: fuzzed names would send DNS queries.
var skipped = map[string]bool{"KSR.forward": true, "KSR.forward_uri": true}

func newFuzzRig(t testing.TB) *fuzzRig {
	t.Helper()
	dir := t.TempDir()
	conf := "[core]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\nworkers = 1\n[lua]\nscript = \"s.lua\"\n" +
		enginetest.AllModulesConfig()
	for name, text := range map[string]string{"c.toml": conf, "s.lua": "function ksr_request_route() end"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := engine.LoadConfigFile(filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	compile := func(c *engine.Config) (engine.Script, error) { return luabind.CompileScript(c, quiet) }
	e, err := engine.New(cfg, compile, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := luabind.CompileScript(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	est, err := s.NewState(0)
	if err != nil {
		t.Fatal(err)
	}
	st := est.(*luabind.State)
	t.Cleanup(st.Close)
	r := &fuzzRig{e: e, st: st}
	ksr := st.L.GetGlobal("KSR").(*lua.LTable)
	var walk func(prefix string, tb *lua.LTable)
	walk = func(prefix string, tb *lua.LTable) {
		tb.ForEach(func(k, v lua.LValue) {
			name := prefix + "." + k.String()
			switch v := v.(type) {
			case *lua.LTable:
				walk(name, v)
			case *lua.LFunction:
				if !skipped[name] {
					r.fns = append(r.fns, ksrFn{name, v})
				}
			}
		})
	}
	walk("KSR", ksr)
	sort.Slice(r.fns, func(i, j int) bool { return r.fns[i].name < r.fns[j].name })
	for _, raw := range []string{
		"INVITE sip:bob@127.0.0.1:5070;transport=udp SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1;rport\n" +
			"From: \"A\" <sip:alice@example.org>;tag=1\nTo: <sip:bob@example.net>\nCall-ID: f@x\nCSeq: 1 INVITE\n" +
			"Contact: <sip:a@127.0.0.1:5099>\nMax-Forwards: 10\nX-Multi: 1\nX-Multi: 2\nContent-Length: 4\n\nbody",
		"REGISTER sips:127.0.0.1 SIP/2.0\nv: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-2\nf: <tel:+1>;tag=2\nt: <sip:x@y>;tag=3\n" +
			"i: r@x\nCSeq: 2 REGISTER\nl: 0\n\n",
		"SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-3\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\n" +
			"Call-ID: c@x\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
		"ACK sip:127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: a@x\n" +
			"CSeq: 1 ACK\nContent-Length: 0\n\n",
	} {
		r.msgs = append(r.msgs, []byte(enginetest.CRLF(raw)))
	}
	return r
}

func (r *fuzzRig) msg(t testing.TB, i int) *engine.Msg {
	raw := r.msgs[i%len(r.msgs)]
	m, err := r.e.NewMsg(append([]byte(nil), raw...), netip.MustParseAddrPort("127.0.0.1:9"), engine.UDP)
	if err != nil {
		t.Fatalf("seed message %d: %v", i, err)
	}
	return m
}

// call runs one KSR function and fails the test on a Go panic (a Lua error is fine: bad arguments raise).
func (r *fuzzRig) call(t testing.TB, m *engine.Msg, f ksrFn, args ...lua.LValue) {
	t.Helper()
	r.st.SetMsg(m)
	defer r.st.SetMsg(nil)
	err := r.st.L.CallByParam(lua.P{Fn: f.fn, NRet: 1, Protect: true}, args...)
	if err == nil {
		r.st.L.Pop(1)
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Type == lua.ApiErrorPanic {
		t.Fatalf("%s(%s) panicked in Go: %v", f.name, showArgs(args), ae.Object)
	}
	_ = m.Outgoing() // edits the call recorded must still apply
	_ = m.BuildReply(nil, 200, "OK", nil, "")
}

func showArgs(args []lua.LValue) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = a.Type().String() + " " + strconv.Quote(a.String())
	}
	return strings.Join(s, ", ")
}

// argSets are the arguments every function gets in TestKSRCallAll: missing, the right kinds, wrong kinds.
func argSets(L *lua.LState) [][]lua.LValue {
	return [][]lua.LValue{
		nil,
		{lua.LString("$ru"), lua.LNumber(1), lua.LString("x")},
		{lua.LNumber(-1), lua.LNumber(1e300), lua.LString("")},
		{lua.LString("X-Multi"), lua.LString("X-New: 1\r\n"), lua.LNumber(-7)},
		{lua.LNil, lua.LFalse, L.NewTable()},
		{lua.LString("$hdr(X-Multi)"), lua.LString("sip:bob@127.0.0.1:1"), lua.LString("sip:a@b;x")},
		{lua.LNumber(0), lua.LNumber(0), lua.LNumber(0)},
	}
}

// TestKSRCallAll calls every KSR function of every module on each seed message with valid, empty and
// wrongly typed arguments: none may panic in Go.
func TestKSRCallAll(t *testing.T) {
	t.Chdir(t.TempDir()) // corex.file_write writes where it is told, e.g. "$ru": not into the package
	r := newFuzzRig(t)
	if len(r.fns) < 100 {
		t.Fatalf("only %d KSR functions found", len(r.fns))
	}
	for i := range r.msgs {
		for _, f := range r.fns {
			for _, args := range argSets(r.st.L) {
				r.call(t, r.msg(t, i), f, args...)
			}
		}
	}
}

// FuzzKSRCall calls one KSR function with fuzzed argument values and types on a fuzz-chosen message.
func FuzzKSRCall(f *testing.F) {
	f.Chdir(f.TempDir()) // as TestKSRCallAll
	r := newFuzzRig(f)
	for i := range r.fns {
		f.Add(uint16(i), uint8(i), uint16(0x3210), "$hdr(X-Multi)", "X-A: 1", int64(1), 0.5)
	}
	f.Add(uint16(0), uint8(0), uint16(0x3fff), "$(var(x))", "", int64(-1<<62), -1e308)
	f.Fuzz(func(t *testing.T, fi uint16, mi uint8, kinds uint16, s1, s2 string, n int64, x float64) {
		fn := r.fns[int(fi)%len(r.fns)]
		L := r.st.L
		nargs := int(kinds>>12) & 3
		args := make([]lua.LValue, nargs)
		for k := range args {
			switch (kinds >> (4 * k)) & 7 {
			case 0:
				args[k] = lua.LString(s1)
			case 1:
				args[k] = lua.LString(s2)
			case 2:
				args[k] = lua.LNumber(n)
			case 3:
				args[k] = lua.LNumber(x)
			case 4:
				args[k] = lua.LNil
			case 5:
				args[k] = lua.LBool(n&1 == 1)
			case 6:
				args[k] = L.NewTable()
			default:
				args[k] = lua.LString(strconv.FormatInt(n, 10))
			}
		}
		r.call(t, r.msg(t, int(mi)), fn, args...)
	})
}
