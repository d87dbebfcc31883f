package luabind

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/siplua/siplua/engine"
)

// Problem is one finding of Check, printed as file:line: message.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Check compiles cfg's script, scans it for KSR names that no loaded module exports, runs its top-level
// chunk and checks that ksr_request_route exists: what `siplua -c` and a reload verify before serving.
func Check(cfg *engine.Config) []error {
	src, err := cfg.ReadFile(cfg.Lua.Script)
	if err != nil {
		return []error{Problem{File: cfg.ScriptPath(), Msg: fmt.Sprintf("cannot read script: %v", err)}}
	}
	if _, err := compile(src, cfg.ScriptPath()); err != nil {
		return []error{err}
	}
	probs := ScanNames(cfg.ScriptPath(), src, cfg.Mods)
	if len(probs) > 0 {
		return probs
	}
	if _, err := CompileScript(cfg, discardLogger()); err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return []error{se}
		}
		return []error{err}
	}
	return nil
}

var ksrRe = regexp.MustCompile(`\bKSR\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?`)

// ScanNames finds every KSR.name and KSR.module.name in the code (comments and strings skipped) and reports
// those that the loaded modules do not export, telling "module not loaded" from "no such function".
func ScanNames(file string, src []byte, mods *engine.ModuleSet) []error {
	loaded := map[string]map[string]bool{} // module -> functions; "" = KSR top level
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
		}
	}
	for _, l := range mods.List {
		add(loaded, l, l.Inst)
	}
	loaded["x"] = map[string]bool{"exit": true, "drop": true}
	available := map[string]map[string]bool{}
	for _, name := range engine.RegisteredModules() {
		m, _ := engine.LookupModule(name)
		add(available, engine.Loaded{Module: m}, m.New())
	}

	var errs []error
	seen := map[string]bool{}
	code := stripLua(src)
	for lineNo, line := range strings.Split(code, "\n") {
		for _, mm := range ksrRe.FindAllStringSubmatch(line, -1) {
			a, b := mm[1], mm[2]
			if loaded[""][a] && !(b != "" && loaded[a] != nil) {
				continue // KSR.is_method
			}
			msg := ""
			switch {
			case loaded[a] != nil:
				if b == "" || loaded[a][b] {
					continue
				}
				msg = fmt.Sprintf("unknown function KSR.%s.%s: module %s has no function %q", a, b, a, b)
			case available[a] != nil:
				msg = fmt.Sprintf("KSR.%s is from module %q, which is not loaded: add a [modules.%s] table to the config", joinName(a, b), a, a)
			case available[""][a]:
				continue
			default:
				msg = fmt.Sprintf("unknown KSR function or module KSR.%s", joinName(a, b))
			}
			key := fmt.Sprintf("%d:%s", lineNo, msg)
			if !seen[key] {
				seen[key] = true
				errs = append(errs, Problem{File: file, Line: lineNo + 1, Msg: msg})
			}
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].(Problem).Line < errs[j].(Problem).Line })
	return errs
}

func joinName(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}

// stripLua blanks comments and string literals, keeping newlines so line numbers stay right.
func stripLua(src []byte) string {
	out := []byte(string(src))
	blank := func(from, to int) {
		for k := from; k < to && k < len(out); k++ {
			if out[k] != '\n' {
				out[k] = ' '
			}
		}
	}
	longEnd := func(i int) (int, int) { // at '[', returns level and index after opening, or -1
		j := i + 1
		for j < len(out) && out[j] == '=' {
			j++
		}
		if j < len(out) && out[j] == '[' {
			return j - i - 1, j + 1
		}
		return -1, 0
	}
	closeLong := func(from, level int) int {
		closing := "]" + strings.Repeat("=", level) + "]"
		if k := strings.Index(string(out[from:]), closing); k >= 0 {
			return from + k + len(closing)
		}
		return len(out)
	}
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == '-' && i+1 < len(out) && out[i+1] == '-':
			if i+2 < len(out) && out[i+2] == '[' {
				if lvl, start := longEnd(i + 2); lvl >= 0 {
					end := closeLong(start, lvl)
					blank(i, end)
					i = end - 1
					continue
				}
			}
			end := i
			for end < len(out) && out[end] != '\n' {
				end++
			}
			blank(i, end)
			i = end - 1
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(out) && out[j] != c && out[j] != '\n' {
				if out[j] == '\\' {
					j++
				}
				j++
			}
			blank(i+1, j)
			i = j
		case c == '[':
			if lvl, start := longEnd(i); lvl >= 0 {
				end := closeLong(start, lvl)
				blank(i+1, end-1)
				i = end - 1
			}
		}
	}
	return string(out)
}
