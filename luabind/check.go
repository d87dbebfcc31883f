package luabind

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
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
// chunk and checks that ksr_request_route exists: what `siplua -c` and a reload verify before serving. It
// reports every problem it can find, not only the first.
func Check(cfg *engine.Config) []error {
	name := displayPath(cfg)
	src, err := cfg.ReadFile(cfg.Lua.Script)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		where := "named by lua.script"
		if cfg.KeyLine("lua", "script") == 0 {
			where = "lua.script is not set and this is its default"
		}
		return []error{&engine.ConfigError{File: cfg.File, Line: cfg.KeyLine("lua", "script"),
			Msg: fmt.Sprintf("cannot read the routing script %s (%s): %v", name, where, err)}}
	}
	probs := ScanNames(name, src, cfg.Mods)
	proto, err := compile(src, name)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) && strings.HasSuffix(se.Msg, " at end of file") {
			se.Msg += " (is an 'end' or a closing bracket missing?)"
		}
		return sortProblems(append(probs, err))
	}
	s := &Script{cfg: cfg, name: name, proto: proto, log: discardLogger(), modules: map[string]*lua.FunctionProto{}}
	if p := checkState(s); p != nil && !onSameLine(probs, p) {
		probs = append(probs, p)
	}
	return sortProblems(probs)
}

// displayPath names the script as the user can open it: relative to the directory the configuration file was
// named from (the embedded default's script by its name in the binary).
func displayPath(cfg *engine.Config) string {
	if cfg.FS != nil || filepath.IsAbs(cfg.Lua.Script) || cfg.File == "" {
		return cfg.Lua.Script
	}
	return filepath.Join(filepath.Dir(cfg.File), cfg.Lua.Script)
}

// checkState runs the top-level chunk in a state like a worker's and looks for ksr_request_route.
func checkState(s *Script) error {
	L := newLState()
	defer L.Close()
	st := &State{L: L, script: s}
	st.exit, st.drop = L.NewUserData(), L.NewUserData()
	openSafeLibs(L, s)
	if err := st.buildKSR(); err != nil {
		return Problem{File: s.name, Msg: err.Error()}
	}
	if err, timedOut := runChunk(L, s.proto, s.cfg.Lua.RouteBudget()); err != nil {
		text := luaErrText(err)
		p := Problem{File: s.name, Msg: "error while running the top-level code: " + text}
		if m := lineRe.FindStringSubmatch(text); m != nil {
			p.File = m[1]
			p.Line, _ = strconv.Atoi(m[2])
			p.Msg = "error while running the top-level code: " + text[len(m[0]):]
		}
		if timedOut {
			p.Msg = fmt.Sprintf("top-level chunk did not finish within %v (lua.route_timeout)", s.cfg.Lua.RouteBudget())
		}
		if i := strings.Index(p.Msg, "\nstack traceback:"); i >= 0 {
			p.Msg = p.Msg[:i]
		}
		return p
	}
	switch v := L.GetGlobal("ksr_request_route").(type) {
	case *lua.LFunction:
		return nil
	case *lua.LNilType:
		var funcs []string
		L.G.Global.ForEach(func(k, v lua.LValue) {
			if _, ok := v.(*lua.LFunction); ok {
				funcs = append(funcs, k.String())
			}
		})
		hint := ""
		if sim := engine.Suggest("ksr_request_route", funcs); sim != "" {
			hint = fmt.Sprintf(" (there is a function %s: a typo?)", sim)
		}
		return Problem{File: s.name, Msg: "function ksr_request_route is not defined" + hint +
			"; the script must define it, siplua calls it for every request"}
	default:
		return Problem{File: s.name, Msg: fmt.Sprintf("ksr_request_route is a %s, expected a function", v.Type())}
	}
}

var lineRe = regexp.MustCompile(`^(.+?\.lua):(\d+):\s*`)

// onSameLine tells whether a runtime problem sits on a line the name scan already reported (calling an
// unknown KSR function fails there too; one report is enough).
func onSameLine(probs []error, p error) bool {
	pp, ok := p.(Problem)
	if !ok || pp.Line == 0 {
		return false
	}
	for _, q := range probs {
		if qp, ok := q.(Problem); ok && qp.File == pp.File && qp.Line == pp.Line {
			return true
		}
	}
	return false
}

func sortProblems(errs []error) []error {
	line := func(e error) int {
		var se *SyntaxError
		if errors.As(e, &se) {
			return se.Line
		}
		if p, ok := e.(Problem); ok {
			return p.Line
		}
		return 0
	}
	sort.SliceStable(errs, func(i, j int) bool { return line(errs[i]) < line(errs[j]) })
	return errs
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
	loaded["x"] = map[string]bool{"exit": true, "drop": true, "modf": true, "probe": true}
	available := map[string]map[string]bool{}
	for _, name := range engine.RegisteredModules() {
		m, _ := engine.LookupModule(name)
		add(available, engine.Loaded{Module: m}, m.New())
	}
	var loadedMods, allMods []string
	for name := range loaded {
		if name != "" {
			loadedMods = append(loadedMods, name)
		}
	}
	for name := range available {
		if name != "" {
			allMods = append(allMods, name)
		}
	}
	sort.Strings(loadedMods)
	sort.Strings(allMods)

	var errs []error
	seen := map[string]bool{}
	code := stripLua(src)
	lines := strings.Split(code, "\n")
	// A module named without a call (`if not KSR.rtpproxy then return 1 end`, `if KSR.auth then`) is a
	// presence check, as Kamailio's example scripts do for optional modules: the name itself is nil when the
	// module is not loaded, and calls into that module are taken as guarded by it, so not reported.
	guarded := map[string]bool{}
	for _, line := range lines {
		for _, ix := range ksrRe.FindAllStringSubmatchIndex(line, -1) {
			if ix[4] < 0 && !calledAt(line, ix[1]) {
				guarded[line[ix[2]:ix[3]]] = true
			}
		}
	}
	for lineNo, line := range lines {
		for _, ix := range ksrRe.FindAllStringSubmatchIndex(line, -1) {
			a, b := line[ix[2]:ix[3]], ""
			if ix[4] >= 0 {
				b = line[ix[4]:ix[5]]
			}
			if b == "" && !calledAt(line, ix[1]) && !loaded[""][a] && !available[""][a] {
				continue // a presence check of a module: nil when it is not loaded
			}
			if b != "" && guarded[a] && loaded[a] == nil {
				continue // KSR.rtpproxy.rtpproxy_manage behind `if not KSR.rtpproxy then return 1 end`
			}
			if loaded[""][a] && !(b != "" && loaded[a] != nil) {
				continue // KSR.is_method
			}
			msg := ""
			switch {
			case loaded[a] != nil:
				if b == "" || loaded[a][b] {
					continue
				}
				msg = fmt.Sprintf("unknown function KSR.%s.%s: module %s has no function %q%s", a, b, a, b,
					suggestFn(a, b, loaded[a]))
			case available[a] != nil:
				if b != "" && !available[a][b] {
					msg = fmt.Sprintf("unknown function KSR.%s.%s: module %s (not loaded) has no function %q%s",
						a, b, a, b, suggestFn(a, b, available[a]))
				} else {
					msg = fmt.Sprintf("KSR.%s is from module %s, which is not loaded: add a [modules.%s] table to the config", joinName(a, b), a, a)
				}
			case available[""][a]:
				continue
			case b == "":
				msg = fmt.Sprintf("unknown function KSR.%s%s", a, suggestFn("", a, loaded[""]))
			default:
				hint := ""
				if sim := engine.Suggest(a, allMods); sim != "" {
					hint = fmt.Sprintf(" (did you mean KSR.%s?)", sim)
				}
				msg = fmt.Sprintf("unknown module in KSR.%s: there is no module %q%s; loaded modules: %s", joinName(a, b), a, hint,
					strings.Join(loadedMods, ", "))
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

// calledAt tells whether the name ending at line[end] is called: the next non-blank character is "(" (or
// a string or table argument, Lua's f"x" / f{...}).
func calledAt(line string, end int) bool {
	rest := strings.TrimLeft(line[end:], " \t")
	return rest != "" && strings.ContainsRune("(\"'{", rune(rest[0]))
}

// suggestFn proposes the closest function name of a module ("" = KSR top level) for a typo.
func suggestFn(mod, name string, fns map[string]bool) string {
	names := make([]string, 0, len(fns))
	for n := range fns {
		names = append(names, n)
	}
	sim := engine.Suggest(name, names)
	if sim == "" {
		return ""
	}
	if mod != "" {
		sim = mod + "." + sim
	}
	return fmt.Sprintf(" (did you mean KSR.%s?)", sim)
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
