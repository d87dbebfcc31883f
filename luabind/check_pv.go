package luabind

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/siplua/siplua/engine"
)

// pvChecker is implemented by the pv module: it validates a pseudo-variable spec or an xlog format
// against the variable classes the loaded modules provide (luabind does not import modules).
type pvChecker interface {
	CheckSpec(spec string, known func(name string) bool) error
	CheckFormat(format string, known func(name string) bool) error
}

// pvCallRe finds KSR.pv.*, KSR.xlog.* and KSR.pvx.evalx calls whose arguments start with string literals.
var pvCallRe = regexp.MustCompile(`\bKSR\s*\.\s*(pv|xlog|pvx)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')(?:\s*,\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))?`)

// ScanPVs reports literal pseudo-variables that cannot work: invalid specs and names no loaded module
// provides, in KSR.pv.* calls, xlog format strings and pvx.evalx (Kamailio refuses them at startup; at
// run time siplua logs them once and reads null).
func ScanPVs(file string, src []byte, mods *engine.ModuleSet) []error {
	var checker pvChecker
	names := map[string]bool{}
	for _, l := range mods.List {
		if c, ok := l.Inst.(pvChecker); ok && checker == nil {
			checker = c
		}
		if p, ok := l.Inst.(engine.PVProvider); ok {
			for _, pv := range p.PVs() {
				names[pv.Name] = true
			}
		}
	}
	if checker == nil {
		return nil
	}
	known := func(n string) bool { return names[n] }
	code := strings.Split(stripLua(src), "\n")
	var errs []error
	for lineNo, line := range strings.Split(string(src), "\n") {
		stripped := ""
		if lineNo < len(code) {
			stripped = code[lineNo]
		}
		for _, loc := range pvCallRe.FindAllStringSubmatchIndex(line, -1) {
			if loc[0] >= len(stripped) || stripped[loc[0]] != 'K' {
				continue // inside a comment or a string
			}
			mod, fn := line[loc[2]:loc[3]], line[loc[4]:loc[5]]
			arg1 := unquoteLua(line[loc[6]:loc[7]])
			arg2, has2 := "", loc[8] >= 0
			if has2 {
				arg2 = unquoteLua(line[loc[8]:loc[9]])
			}
			var err error
			switch {
			case mod == "pv":
				err = checker.CheckSpec(arg1, known)
			case mod == "xlog" && fn == "xlog":
				if has2 {
					err = checker.CheckFormat(arg2, known)
				}
			case mod == "xlog":
				err = checker.CheckFormat(arg1, known)
			case mod == "pvx" && fn == "evalx":
				if err = checker.CheckSpec(arg1, known); err == nil && has2 {
					err = checker.CheckFormat(arg2, known)
				}
			}
			if err != nil {
				errs = append(errs, Problem{File: file, Line: lineNo + 1, Msg: fmt.Sprintf("KSR.%s.%s: %v", mod, fn, err)})
			}
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].(Problem).Line < errs[j].(Problem).Line })
	return errs
}

// unquoteLua removes the quotes of a short Lua string literal and its simple escapes.
func unquoteLua(s string) string {
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\r`, "\r", `\"`, `"`, `\'`, `'`, `\\`, `\`).Replace(s)
}
