package luabind

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/siplua/siplua/engine"
	lua "github.com/yuin/gopher-lua"
)

// Checked returns an engine.Compiler that validates as `siplua -c` does (syntax, the static KSR name scan,
// the top-level chunk and ksr_request_route) before handing the script over, so a reload never swaps in a
// script that -c would reject. Problems come back as engine.Errors of file:line: message.
func Checked(log *slog.Logger) engine.Compiler {
	return func(cfg *engine.Config) (engine.Script, error) {
		s, err := CompileChecked(cfg, log)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// CompileChecked is CompileScript preceded by Check's name scan; the script is parsed once.
func CompileChecked(cfg *engine.Config, log *slog.Logger) (*Script, error) {
	src, err := cfg.ReadFile(cfg.Lua.Script)
	if err != nil {
		return nil, Problem{File: cfg.ScriptPath(), Msg: fmt.Sprintf("cannot read script: %v", err)}
	}
	proto, err := compile(src, cfg.ScriptPath())
	if err != nil {
		return nil, err
	}
	if probs := ScanNames(cfg.ScriptPath(), src, cfg.Mods); len(probs) > 0 {
		return nil, engine.Errors(probs)
	}
	s := &Script{cfg: cfg, name: cfg.ScriptPath(), proto: proto, log: log.With("module", "lua"), modules: map[string]*lua.FunctionProto{}}
	st, err := s.NewState(-1)
	if err != nil {
		return nil, placeFirst(err)
	}
	st.Close()
	return s, nil
}

var placeRe = regexp.MustCompile(`^(.+?): running top-level chunk: ((?:[^\s:]+\.lua:\d+: )+)(.*)$`)

// placeFirst rewrites "script.lua: running top-level chunk: script.lua:1: lib.lua:2: msg" so that the
// innermost place leads, as every reload error does: "lib.lua:2: msg (required from script.lua:1)".
func placeFirst(err error) error {
	m := placeRe.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	places := strings.Split(strings.TrimSuffix(m[2], ": "), ": ")
	inner, outer := places[len(places)-1], places[:len(places)-1]
	msg := inner + ": " + m[3]
	if len(outer) > 0 {
		slices.Reverse(outer)
		return errors.New(msg + " (required from " + strings.Join(outer, ", from ") + ")")
	}
	return errors.New(msg + " (running the top-level chunk)")
}

// Files lists the script and the files it required so far, as paths (for file watching).
func (s *Script) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	files := []string{s.cfg.ScriptPath()}
	for rel := range s.modules {
		files = append(files, s.cfg.Resolve(rel))
	}
	sort.Strings(files[1:])
	return files
}
