package luabind

import (
	"fmt"
	"log/slog"
	"sort"

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
		return nil, err
	}
	st.Close()
	return s, nil
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
