package luabind

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/siplua/siplua/engine"
)

// AllModules returns a fresh instance of every registered module, for documentation and tests that cover
// every export (a running engine only has the modules its configuration loads).
func AllModules() []engine.Loaded {
	var out []engine.Loaded
	for _, name := range engine.RegisteredModules() {
		m, _ := engine.LookupModule(name)
		out = append(out, engine.Loaded{Module: m, Inst: m.New()})
	}
	return out
}

// Reference renders the KSR functions of mods as markdown: one "### KSR.module" list per module, each
// function with a signature derived from its Go type, so the README cannot drift from the code.
func Reference(mods []engine.Loaded) string {
	var b strings.Builder
	sorted := append([]engine.Loaded(nil), mods...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].TopLevel != sorted[j].TopLevel {
			return sorted[i].TopLevel
		}
		return sorted[i].Name < sorted[j].Name
	})
	section := func(title string, lines []string) {
		sort.SliceStable(lines, func(i, j int) bool { return fnName(lines[i]) < fnName(lines[j]) })
		fmt.Fprintf(&b, "### %s\n\n", title)
		for _, l := range lines {
			fmt.Fprintf(&b, "- `%s`\n", l)
		}
		b.WriteString("\n")
	}
	wroteX := false
	for _, lm := range sorted {
		prefix, title := "KSR."+lm.Name+".", "KSR."+lm.Name
		if lm.TopLevel {
			prefix, title = "KSR.", "KSR ("+lm.Name+")"
		}
		if !lm.TopLevel && !wroteX {
			section("KSR.x", []string{"void KSR.x.exit()", "void KSR.x.drop()", "int KSR.x.modf(str, ...)", "void KSR.x.probe()"})
			wroteX = true
		}
		var lines []string
		for _, ex := range lm.Inst.Exports() {
			lines = append(lines, Signature(prefix+ex.Name, ex.Fn))
		}
		section(title, lines)
	}
	if !wroteX {
		section("KSR.x", []string{"void KSR.x.exit()", "void KSR.x.drop()", "int KSR.x.modf(str, ...)", "void KSR.x.probe()"})
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// fnName is the "KSR.x.y" part of a signature line, the sort key of a section.
func fnName(sig string) string {
	_, rest, _ := strings.Cut(sig, " ")
	return rest
}

var (
	msgType   = reflect.TypeOf((*engine.Msg)(nil))
	valueType = reflect.TypeOf(engine.Value{})
)

// Signature renders one export as "ret KSR.name(args)" in Kamailio's KEMI documentation style: str, int,
// bool, str|nil for a string-or-nil getter, str|int|nil for a pseudo-variable value, void for nothing.
func Signature(full string, fn any) string {
	t := reflect.TypeOf(fn)
	if t == nil || t.Kind() != reflect.Func {
		return "? " + full + "(?)"
	}
	var args []string
	for i := 0; i < t.NumIn(); i++ {
		if in := t.In(i); in != msgType {
			args = append(args, typeName(in))
		}
	}
	ret := "void"
	switch t.NumOut() {
	case 1:
		ret = typeName(t.Out(0))
	case 2:
		if t.Out(0).Kind() == reflect.String && t.Out(1).Kind() == reflect.Bool {
			ret = "str|nil"
		} else {
			ret = typeName(t.Out(0)) + "," + typeName(t.Out(1))
		}
	}
	return ret + " " + full + "(" + strings.Join(args, ", ") + ")"
}

func typeName(t reflect.Type) string {
	if t == valueType {
		return "str|int|nil"
	}
	switch t.Kind() {
	case reflect.String:
		return "str"
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.Bool:
		return "bool"
	case reflect.Interface:
		return "table|nil"
	}
	return t.String()
}
