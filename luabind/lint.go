package luabind

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// The static checks of `siplua -c` walk the Lua AST (gopher-lua's parser, the one the compiler uses), so
// comments, strings and scopes are what Lua says they are. Errors: KSR names that no module exports (a nil
// call at run time). Warnings (errors with -c -strict): Kamailio's script traps that compile and run but do
// the wrong thing.
//
// A module presence check, as Kamailio's own example script makes them (`if not KSR.auth then return 1
// end`, `if KSR.nathelper then ... end`, `KSR.permissions and ...`), is not an error when the module is not
// loaded: the code it guards cannot run then, and is not checked.

// analysis is one walk over a script.
type analysis struct {
	file                string
	loaded              map[string]map[string]bool // module -> functions; "" = KSR top level
	available           map[string]map[string]bool // every registered module
	fns                 map[string]any             // "module.fn" / "fn" (top level) -> the export's Go func, for types
	topMod              map[string]string          // top-level function -> its module (for its parameter names)
	loadedMods, allMods []string

	errs, warns []Problem
	seen        map[string]bool

	globals map[string]bool   // global functions the script defines (route names)
	scopes  []map[string]bool // local names in scope
	fnName  string            // the function being walked ("" = top level)
	depth   int               // function nesting
}

func newAnalysis(file string, mods *engine.ModuleSet) *analysis {
	a := &analysis{file: file, loaded: map[string]map[string]bool{}, available: map[string]map[string]bool{},
		fns: map[string]any{}, topMod: map[string]string{}, seen: map[string]bool{}, globals: map[string]bool{}}
	add := func(into map[string]map[string]bool, l engine.Loaded, inst engine.Instance) {
		key := l.Name
		if l.TopLevel {
			key = ""
		}
		if into[key] == nil {
			into[key] = map[string]bool{}
		}
		for _, ex := range inst.Exports() {
			into[key][ex.Name] = true
			full := ex.Name
			if key != "" {
				full = key + "." + ex.Name
			} else if _, ok := a.topMod[ex.Name]; !ok {
				a.topMod[ex.Name] = l.Name
			}
			if _, ok := a.fns[full]; !ok {
				a.fns[full] = ex.Fn
			}
		}
	}
	if mods != nil {
		for _, l := range mods.List {
			add(a.loaded, l, l.Inst)
		}
	}
	a.loaded["x"] = map[string]bool{"exit": true, "drop": true, "modf": true, "probe": true}
	a.loaded["app_lua"] = map[string]bool{}
	for _, name := range AppLuaFunctions {
		a.loaded["app_lua"][name] = true
	}
	for _, name := range engine.RegisteredModules() {
		m, _ := engine.LookupModule(name)
		add(a.available, engine.Loaded{Module: m}, m.New())
	}
	for name := range a.loaded {
		if name != "" {
			a.loadedMods = append(a.loadedMods, name)
		}
	}
	for name := range a.available {
		if name != "" {
			a.allMods = append(a.allMods, name)
		}
	}
	sort.Strings(a.loadedMods)
	sort.Strings(a.allMods)
	return a
}

// analyze parses src and walks it; a syntax error gives no findings (the compiler reports it).
func analyze(file string, src []byte, mods *engine.ModuleSet) *analysis {
	a := newAnalysis(file, mods)
	chunk, err := parse.Parse(bytes.NewReader(src), file)
	if err != nil {
		return a
	}
	for _, s := range chunk {
		switch s := s.(type) {
		case *ast.FuncDefStmt:
			if id, ok := s.Name.Func.(*ast.IdentExpr); ok && s.Name.Receiver == nil {
				a.globals[id.Value] = true
			}
		case *ast.AssignStmt:
			for i, l := range s.Lhs {
				if id, ok := l.(*ast.IdentExpr); ok && i < len(s.Rhs) {
					if _, ok := s.Rhs[i].(*ast.FunctionExpr); ok {
						a.globals[id.Value] = true
					}
				}
			}
		}
	}
	a.block(chunk)
	byLine := func(ps []Problem) {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	}
	byLine(a.errs)
	byLine(a.warns)
	return a
}

// ScanNames finds every KSR.name and KSR.module.name in the code and reports those that the loaded
// modules do not export, telling "module not loaded" from "no such function". Code that a module presence
// check guards is skipped when that module is not loaded.
func ScanNames(file string, src []byte, mods *engine.ModuleSet) []error {
	a := analyze(file, src, mods)
	out := make([]error, len(a.errs))
	for i, p := range a.errs {
		out[i] = p
	}
	return out
}

// Lint returns the warnings of the static checks (Msg starts with "warning: ").
func Lint(file string, src []byte, mods *engine.ModuleSet) []Problem {
	return analyze(file, src, mods).warns
}

func (a *analysis) report(into *[]Problem, line int, msg string) {
	key := strconv.Itoa(line) + ":" + msg
	if a.seen[key] {
		return
	}
	a.seen[key] = true
	*into = append(*into, Problem{File: a.file, Line: line, Msg: msg})
}

func (a *analysis) warn(line int, format string, args ...any) {
	a.report(&a.warns, line, "warning: "+fmt.Sprintf(format, args...))
}

// --- scopes

func (a *analysis) push(names ...string) {
	s := map[string]bool{}
	for _, n := range names {
		s[n] = true
	}
	a.scopes = append(a.scopes, s)
}

func (a *analysis) pop() { a.scopes = a.scopes[:len(a.scopes)-1] }

func (a *analysis) declare(names ...string) {
	for _, n := range names {
		a.scopes[len(a.scopes)-1][n] = true
	}
}

func (a *analysis) isLocal(name string) bool {
	for i := len(a.scopes) - 1; i >= 0; i-- {
		if a.scopes[i][name] {
			return true
		}
	}
	return false
}

// --- statements

func (a *analysis) block(stmts []ast.Stmt) {
	a.push()
	defer a.pop()
	for _, s := range stmts {
		a.stmt(s)
		// if not KSR.m then return end: the rest of the block runs only with module m
		if ifs, ok := s.(*ast.IfStmt); ok && len(ifs.Else) == 0 && exits(ifs.Then) {
			if a.anyUnloaded(exitGuards(ifs.Condition)) {
				return
			}
		}
	}
}

func (a *analysis) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		for _, e := range s.Rhs {
			a.expr(e, false)
		}
		for _, l := range s.Lhs {
			if id, ok := l.(*ast.IdentExpr); ok {
				if a.depth > 0 && !a.isLocal(id.Value) {
					a.warn(s.Line(), "global variable %s assigned in function %s: a global keeps its value from one message "+
						"to the next on a worker (each worker has its own) and starts over on reload; declare it local "+
						"(local %s = ...), or keep state across messages in htable (or $var, per worker)", id.Value, a.fnLabel(), id.Value)
				}
				continue
			}
			a.expr(l, false)
		}
	case *ast.LocalAssignStmt:
		if len(s.Exprs) == 1 && len(s.Names) == 1 {
			if f, ok := s.Exprs[0].(*ast.FunctionExpr); ok { // local function f: f is in scope inside
				a.declare(s.Names[0])
				a.function(s.Names[0], f)
				return
			}
		}
		for _, e := range s.Exprs {
			a.expr(e, false)
		}
		a.declare(s.Names...)
	case *ast.FuncCallStmt:
		a.expr(s.Expr, false)
	case *ast.DoBlockStmt:
		a.block(s.Stmts)
	case *ast.WhileStmt:
		a.expr(s.Condition, true)
		a.block(s.Stmts)
	case *ast.RepeatStmt:
		a.block(s.Stmts)
		a.expr(s.Condition, true)
	case *ast.IfStmt:
		a.expr(s.Condition, true)
		if !a.anyUnloaded(presenceGuards(s.Condition)) {
			a.block(s.Then)
		}
		// if not KSR.m then ... else <m is there> end
		if len(s.Else) > 0 && !a.anyUnloaded(exitGuards(s.Condition)) {
			a.block(s.Else)
		}
	case *ast.NumberForStmt:
		a.expr(s.Init, false)
		a.expr(s.Limit, false)
		if s.Step != nil {
			a.expr(s.Step, false)
		}
		a.push(s.Name)
		a.block(s.Stmts)
		a.pop()
	case *ast.GenericForStmt:
		for _, e := range s.Exprs {
			a.expr(e, false)
		}
		a.push(s.Names...)
		a.block(s.Stmts)
		a.pop()
	case *ast.FuncDefStmt:
		name := ""
		switch f := s.Name.Func.(type) {
		case *ast.IdentExpr:
			name = f.Value
		case *ast.AttrGetExpr:
			a.expr(f.Object, false)
		}
		if s.Name.Receiver != nil {
			a.expr(s.Name.Receiver, false)
			name = s.Name.Method
		}
		a.function(name, s.Func)
	case *ast.ReturnStmt:
		for _, e := range s.Exprs {
			a.expr(e, false)
		}
	}
}

func (a *analysis) function(name string, f *ast.FunctionExpr) {
	prev := a.fnName
	a.fnName = name
	a.depth++
	a.push(f.ParList.Names...)
	if f.ParList.HasVargs {
		a.declare("...")
	}
	a.block(f.Stmts)
	a.pop()
	a.depth--
	a.fnName = prev
}

func (a *analysis) fnLabel() string {
	if a.fnName == "" {
		return "(anonymous)"
	}
	return a.fnName
}

// exits tells whether a block always leaves: return, break, goto, or KSR.x.exit()/drop() last.
func exits(stmts []ast.Stmt) bool {
	if len(stmts) == 0 {
		return false
	}
	switch s := stmts[len(stmts)-1].(type) {
	case *ast.ReturnStmt, *ast.BreakStmt, *ast.GotoStmt:
		return true
	case *ast.FuncCallStmt:
		if c, ok := s.Expr.(*ast.FuncCallExpr); ok {
			if m, f, ok := ksrName(c.Func); ok && m == "x" && (f == "exit" || f == "drop") {
				return true
			}
		}
	}
	return false
}

// presenceGuards lists the modules a condition needs to be true: KSR.m, and chains of them.
func presenceGuards(e ast.Expr) []string {
	switch e := e.(type) {
	case *ast.AttrGetExpr:
		if m, f, ok := ksrName(e); ok && f == "" {
			return []string{m}
		}
	case *ast.LogicalOpExpr:
		if e.Operator == "and" {
			return append(presenceGuards(e.Lhs), presenceGuards(e.Rhs)...)
		}
	}
	return nil
}

// exitGuards lists the modules that are there when a condition is false: not KSR.m, or chains of them.
func exitGuards(e ast.Expr) []string {
	switch e := e.(type) {
	case *ast.UnaryNotOpExpr:
		return presenceGuards(e.Expr)
	case *ast.LogicalOpExpr:
		if e.Operator == "or" {
			return append(exitGuards(e.Lhs), exitGuards(e.Rhs)...)
		}
	}
	return nil
}

func (a *analysis) anyUnloaded(mods []string) bool {
	for _, m := range mods {
		if a.loaded[m] == nil && !(a.loaded[""][m]) {
			return true
		}
	}
	return false
}

// ksrName reads KSR.m.f (m, f), KSR.f or KSR.m (m, "").
func ksrName(e ast.Expr) (string, string, bool) {
	ag, ok := e.(*ast.AttrGetExpr)
	if !ok {
		return "", "", false
	}
	key, ok := ag.Key.(*ast.StringExpr)
	if !ok {
		return "", "", false
	}
	switch o := ag.Object.(type) {
	case *ast.IdentExpr:
		if o.Value == "KSR" {
			return key.Value, "", true
		}
	case *ast.AttrGetExpr:
		if id, ok := o.Object.(*ast.IdentExpr); ok && id.Value == "KSR" {
			if k, ok := o.Key.(*ast.StringExpr); ok {
				return k.Value, key.Value, true
			}
		}
	}
	return "", "", false
}

// --- expressions

// expr walks an expression; cond says its value is tested for truth (if, while, not, and/or operands).
func (a *analysis) expr(e ast.Expr, cond bool) {
	switch e := e.(type) {
	case *ast.FuncCallExpr:
		a.call(e, cond, false)
	case *ast.AttrGetExpr:
		if m, f, ok := ksrName(e); ok {
			if f == "" && cond {
				return // a module presence check: KSR.auth in a condition
			}
			a.name(e.Line(), m, f)
			return
		}
		a.expr(e.Object, false)
		a.expr(e.Key, false)
	case *ast.LogicalOpExpr:
		a.expr(e.Lhs, true)
		if e.Operator == "and" && a.anyUnloaded(presenceGuards(e.Lhs)) {
			return // KSR.m and KSR.m.f(): not evaluated without m
		}
		if e.Operator == "or" && a.anyUnloaded(exitGuards(e.Lhs)) {
			return // not KSR.m or KSR.m.f()
		}
		a.expr(e.Rhs, cond)
	case *ast.UnaryNotOpExpr:
		if c, ok := e.Expr.(*ast.FuncCallExpr); ok {
			a.call(c, true, true)
			return
		}
		a.expr(e.Expr, true)
	case *ast.RelationalOpExpr:
		a.expr(e.Lhs, false)
		a.expr(e.Rhs, false)
		a.boolCompared(e)
	case *ast.ArithmeticOpExpr:
		a.expr(e.Lhs, false)
		a.expr(e.Rhs, false)
	case *ast.StringConcatOpExpr:
		a.expr(e.Lhs, false)
		a.expr(e.Rhs, false)
	case *ast.UnaryMinusOpExpr:
		a.expr(e.Expr, false)
	case *ast.UnaryLenOpExpr:
		a.expr(e.Expr, false)
	case *ast.FunctionExpr:
		a.function("", e)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				a.expr(f.Key, false)
			}
			a.expr(f.Value, false)
		}
	}
}

// call checks a call: the KSR name, its arguments, an int result used as a truth value, route names.
func (a *analysis) call(c *ast.FuncCallExpr, cond, negated bool) {
	for _, arg := range c.Args {
		a.expr(arg, false)
	}
	m, f, ok := ksrName(c.Func)
	if c.Receiver != nil { // KSR.m:f(): the module table is passed as the first argument
		if mm, ff, isKSR := ksrName(c.Receiver); isKSR && ff == "" {
			m, f, ok = mm, c.Method, true
		} else {
			a.expr(c.Receiver, false)
			return
		}
	}
	if !ok {
		a.expr(c.Func, false)
		return
	}
	if !a.name(c.Line(), m, f) {
		return
	}
	full, fn := m+"."+f, a.fns[m+"."+f]
	if f == "" { // KSR.fn(): a top-level function
		full, fn = m, a.fns[m]
	}
	t := reflect.TypeOf(fn)
	if t == nil || t.Kind() != reflect.Func {
		return
	}
	shown := "KSR." + full + "()"
	if len(c.Args) > 0 {
		shown = "KSR." + full + "(...)"
	}
	if cond && t.NumOut() == 1 && t.Out(0).Kind() == reflect.Int {
		if negated {
			a.warn(c.Line(), "not %s is always false: %s returns an int, and any number (-1 too) is true in Lua; "+
				"write %s < 0", shown, "KSR."+full, shown)
		} else {
			a.warn(c.Line(), "%s returns an int, and any number (-1 too) is true in Lua: this condition is always true; "+
				"write %s > 0", shown, shown)
		}
	}
	a.args(c, full, t)
	if m == "tm" && (f == "t_on_failure" || f == "t_on_branch" || f == "t_on_reply") && len(c.Args) == 1 {
		if s, ok := c.Args[0].(*ast.StringExpr); ok && s.Value != "" && !a.globals[s.Value] {
			var names []string
			for g := range a.globals {
				names = append(names, g)
			}
			hint := ""
			if sim := engine.Suggest(s.Value, names); sim != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", sim)
			}
			a.warn(c.Line(), "KSR.%s names route function %q, which this script does not define%s: the route "+
				"will fail when tm runs it", full, s.Value, hint)
		}
	}
}

// boolCompared warns about a boolean KSR result compared with a number (Kamailio's core checks return a
// boolean in KEMI; scripts ported from int-returning habits write `KSR.is_myself_ruri() > 0`): < and >
// raise "attempt to compare boolean with number" at run time, == and ~= are always false or true.
func (a *analysis) boolCompared(e *ast.RelationalOpExpr) {
	for _, side := range [][2]ast.Expr{{e.Lhs, e.Rhs}, {e.Rhs, e.Lhs}} {
		c, ok := side[0].(*ast.FuncCallExpr)
		if !ok {
			continue
		}
		if _, isNum := side[1].(*ast.NumberExpr); !isNum {
			continue
		}
		m, f, ok := ksrName(c.Func)
		if !ok || c.Receiver != nil {
			continue
		}
		full := m
		if f != "" {
			full = m + "." + f
		}
		t := reflect.TypeOf(a.fns[full])
		if t == nil || t.Kind() != reflect.Func || t.NumOut() != 1 || t.Out(0).Kind() != reflect.Bool {
			continue
		}
		shown := "KSR." + full + "()"
		if len(c.Args) > 0 {
			shown = "KSR." + full + "(...)"
		}
		switch e.Operator {
		case "==", "~=":
			a.warn(e.Line(), "%s returns a boolean: comparing it with a number is always %v; use it directly (if %s then)",
				shown, e.Operator == "~=", shown)
		default:
			a.warn(e.Line(), "%s returns a boolean: comparing it with a number is a run-time error (attempt to compare "+
				"boolean with number); use it directly (if %s then, if not %s then)", shown, shown, shown)
		}
		return
	}
}

// args checks the number of arguments and the types of the literal ones against the export's Go type.
func (a *analysis) args(c *ast.FuncCallExpr, full string, t reflect.Type) {
	var params []reflect.Type
	for i := 0; i < t.NumIn(); i++ {
		if in := t.In(i); in != msgType {
			params = append(params, in)
		}
	}
	mod, fn, _ := strings.Cut(full, ".")
	if fn == "" {
		mod, fn = "", mod
	}
	docKey := mod + "." + fn
	if mod == "" {
		docKey = a.topMod[fn] + "." + fn
	}
	names := exportDocs[docKey].params
	desc := func() string {
		parts := make([]string, len(params))
		for i, p := range params {
			n := ""
			if len(names) == len(params) && names[i] != "" {
				n = names[i] + " "
			}
			parts[i] = n + typeName(p)
		}
		return strings.Join(parts, ", ")
	}
	n := len(c.Args)
	multi := n > 0 && isMulti(c.Args[n-1])
	if n > len(params) || (n < len(params) && !multi) {
		plural := "s"
		if len(params) == 1 {
			plural = ""
		}
		a.warn(c.Line(), "KSR.%s takes %d argument%s (%s), got %d", full, len(params), plural, desc(), n)
		return
	}
	for i, arg := range c.Args {
		if i >= len(params) {
			break
		}
		pname := ""
		if len(names) == len(params) && names[i] != "" {
			pname = " (" + names[i] + ")"
		}
		want := "a string"
		if params[i].Kind() == reflect.Int {
			want = "a number"
		}
		got := ""
		switch v := arg.(type) {
		case *ast.StringExpr:
			if params[i].Kind() == reflect.Int {
				if _, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64); err != nil {
					got = strconv.Quote(v.Value)
				}
			}
		case *ast.NilExpr:
			got = "nil"
		case *ast.TrueExpr, *ast.FalseExpr:
			got = "a boolean"
		case *ast.TableExpr:
			got = "a table"
		case *ast.FunctionExpr:
			got = "a function"
		}
		if got != "" {
			a.warn(c.Line(), "KSR.%s: argument %d%s must be %s, got %s", full, i+1, pname, want, got)
		}
	}
}

func isMulti(e ast.Expr) bool {
	switch e.(type) {
	case *ast.FuncCallExpr, *ast.Comma3Expr:
		return true
	}
	return false
}

// name checks KSR.m.f / KSR.f / KSR.m against the loaded modules; false when it is not a known function.
func (a *analysis) name(line int, m, f string) bool {
	loaded, available := a.loaded, a.available
	if loaded[""][m] && !(f != "" && loaded[m] != nil) {
		return f == "" // KSR.is_method
	}
	msg := ""
	switch {
	case loaded[m] != nil:
		if f == "" || loaded[m][f] {
			return f != ""
		}
		msg = fmt.Sprintf("unknown function KSR.%s.%s: module %s has no function %q%s", m, f, m, f, suggestFn(m, f, loaded[m]))
	case available[m] != nil:
		if f != "" && !available[m][f] {
			msg = fmt.Sprintf("unknown function KSR.%s.%s: module %s (not loaded) has no function %q%s",
				m, f, m, f, suggestFn(m, f, available[m]))
		} else {
			msg = fmt.Sprintf("KSR.%s is from module %s, which is not loaded: add a [modules.%s] table to the config", joinName(m, f), m, m)
		}
	case available[""][m]:
		return false
	case f == "":
		msg = fmt.Sprintf("unknown function KSR.%s%s", m, suggestFn("", m, loaded[""]))
	default:
		hint := ""
		if sim := engine.Suggest(m, a.allMods); sim != "" {
			hint = fmt.Sprintf(" (did you mean KSR.%s?)", sim)
		}
		msg = fmt.Sprintf("unknown module in KSR.%s: there is no module %q%s; loaded modules: %s", joinName(m, f), m, hint,
			strings.Join(a.loadedMods, ", "))
	}
	a.report(&a.errs, line, msg)
	return false
}

// LintConfig runs the static checks' warnings on cfg's script (nothing when it cannot be read: Check says
// why).
func LintConfig(cfg *engine.Config) []Problem {
	src, err := cfg.ReadFile(cfg.Lua.Script)
	if err != nil {
		return nil
	}
	return Lint(displayPath(cfg), src, cfg.Mods)
}
