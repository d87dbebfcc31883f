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
	probs = append(probs, ScanPVs(name, src, cfg.Mods)...)
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
