package luabind

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
)

// adapterShapes has one function of each shape adapt supports, returning what a KSR function most often
// returns (a small return code, a bool, a short string, nothing).
var adapterShapes = []any{
	fnI(func(*engine.Msg) int { return 1 }),
	fnSI(func(*engine.Msg, string) int { return -1 }),
	fnII(func(*engine.Msg, int) int { return 1 }),
	fnSSI(func(*engine.Msg, string, string) int { return 1 }),
	fnISI(func(*engine.Msg, int, string) int { return 1 }),
	fnSII(func(*engine.Msg, string, int) int { return 1 }),
	fnIII(func(*engine.Msg, int, int) int { return 1 }),
	fnSSSI(func(*engine.Msg, string, string, string) int { return 1 }),
	fnSSII(func(*engine.Msg, string, string, int) int { return 1 }),
	fnSISI(func(*engine.Msg, string, int, string) int { return 1 }),
	fnSSIII(func(*engine.Msg, string, string, int, int) int { return 1 }),
	fnSSSII(func(*engine.Msg, string, string, string, int) int { return 1 }),
	fnIIII(func(*engine.Msg, int, int, int) int { return 1 }),
	fnIISI(func(*engine.Msg, int, int, string) int { return 1 }),
	fnISII(func(*engine.Msg, int, string, int) int { return 1 }),
	fnSISII(func(*engine.Msg, string, int, string, int) int { return 1 }),
	fnSSSSI(func(*engine.Msg, string, string, string, string) int { return 1 }),
	fnSSIISI(func(*engine.Msg, string, string, int, int, string) int { return 1 }),
	fnB(func(*engine.Msg) bool { return true }),
	fnSB(func(*engine.Msg, string) bool { return false }),
	fnIB(func(*engine.Msg, int) bool { return true }),
	fnSSB(func(*engine.Msg, string, string) bool { return true }),
	fnSIB(func(*engine.Msg, string, int) bool { return true }),
	fnN(func(*engine.Msg) {}),
	fnSN(func(*engine.Msg, string) {}),
	fnSSN(func(*engine.Msg, string, string) {}),
	fnSIN(func(*engine.Msg, string, int) {}),
	fnISN(func(*engine.Msg, int, string) {}),
	fnV(func(*engine.Msg) engine.Value { return engine.Value{Kind: engine.Int, I: 200} }),
	fnSV(func(*engine.Msg, string) engine.Value { return engine.Value{} }),
	fnSIV(func(*engine.Msg, string, int) engine.Value { return engine.Value{Kind: engine.Int, I: 5} }),
	fnSSV(func(*engine.Msg, string, string) engine.Value { return engine.Value{} }),
	fnXS(func(*engine.Msg) (string, bool) { return "", false }),
	fnSXS(func(*engine.Msg, string) (string, bool) { return "", false }),
	fnSIXS(func(*engine.Msg, string, int) (string, bool) { return "", false }),
	fnS(func(*engine.Msg) string { return "INVITE" }),
	fnSS(func(*engine.Msg, string) string { return "x" }),
	fnSIS(func(*engine.Msg, string, int) string { return "y" }),
}

// TestAdapterAllocs: calling a KSR function from Lua allocates nothing in the adapter for every shape that
// returns a number, a bool, nil or a small int Value (the return codes are pre-boxed); a returned string
// costs gopher-lua's one box for the LString, nothing more. Arguments are literals of the shape's types.
func TestAdapterAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	st := &State{msg: &engine.Msg{}}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	const calls = 1000
	for i, fn := range adapterShapes {
		lf := adapt(st, fmt.Sprintf("t.f%d", i), fn)
		if lf == nil {
			t.Fatalf("shape %T not adapted", fn)
		}
		L.SetGlobal("f", L.NewFunction(lf))
		typ := reflect.TypeOf(fn)
		var args []string
		for a := 1; a < typ.NumIn(); a++ {
			if typ.In(a).Kind() == reflect.String {
				args = append(args, `"a"`)
			} else {
				args = append(args, "7")
			}
		}
		src := fmt.Sprintf("function loop() for i = 1, %d do f(%s) end end", calls, strings.Join(args, ", "))
		if err := L.DoString(src); err != nil {
			t.Fatal(err)
		}
		loop := L.GetGlobal("loop")
		run := func() {
			if err := L.CallByParam(lua.P{Fn: loop, NRet: 0, Protect: true}); err != nil {
				t.Fatal(err)
			}
		}
		run()
		perCall := testing.AllocsPerRun(20, run) / calls
		want := 0.0
		if typ.NumOut() > 0 && typ.Out(0).Kind() == reflect.String {
			if s, ok := reflect.ValueOf(fn).Call(append([]reflect.Value{reflect.ValueOf(st.msg)}, argValues(typ)...))[0].Interface().(string); ok && s != "" {
				want = 1 // the LString box
			}
		}
		// the Lua loop itself costs a few allocations per 1000 calls
		if perCall > want+0.1 {
			t.Errorf("%s: %.2f allocations per call, want %v", typ, perCall, want)
		}
	}
}

func argValues(typ reflect.Type) []reflect.Value {
	var out []reflect.Value
	for a := 1; a < typ.NumIn(); a++ {
		out = append(out, reflect.Zero(typ.In(a)))
	}
	return out
}
