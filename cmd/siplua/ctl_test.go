package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/luabind/enginetest"
)

// TestCtlGolden runs `siplua ctl` against a running siplua and compares exit status, stdout and stderr with
// testdata/ctl/NAME.golden ($DIR stands for the siplua directory). -update rewrites the files.
// The steps run in order: reloads change the generation the later ones show.
func TestCtlGolden(t *testing.T) {
	s := startSiplua(t, "", map[string]string{"script.lua": answer("one")})
	steps := []struct {
		name   string
		before func()
		args   []string
	}{
		{"version", nil, []string{"core.version"}},
		{"version-json", nil, []string{"-json", "core.version"}},
		{"reload", func() { s.write(t, "script.lua", answer("two")) }, []string{"reload"}}, // the short form
		{"reload-broken", func() {
			s.write(t, "script.lua", "function ksr_request_route()\n  KSR.sl.no_such()\n  KSR.maxfwd.process_maxfwd(10)\nend\n")
		}, []string{"core.reload"}},
		{"reload-broken-json", nil, []string{"-json", "app_lua.reload"}},
		{"reload-warning", func() {
			s.write(t, "script.lua", answer("three"))
			s.write(t, "config.toml", strings.Replace(s.config(""), "workers = 2", "workers = 3", 1))
		}, []string{"app_lua.reload"}},
		{"workers", func() { waitWorkers(t, s.sock, 3) }, []string{"core.workers"}},
		{"stats", nil, []string{"stats.get", "reloads"}},
		{"log-level", nil, []string{"log.level", "debug"}},
		{"log-level-bad", nil, []string{"log.level", "loud"}},
		{"unknown", nil, []string{"no.such"}},
		{"usage", nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			args := append([]string{"ctl", "-s", s.sock}, st.args...)
			if st.args == nil {
				args = []string{"ctl"}
			}
			golden(t, st.name, s.dir, args)
		})
	}
	// the reloads above took effect (or not) on the wire
	s.waitReason(t, "three")
}

func TestCtlNothingListening(t *testing.T) {
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	golden(t, "not-listening", dir, []string{"ctl", "-s", filepath.Join(dir, "ctl.sock"), "core.version"})
}

func golden(t *testing.T, name, dir string, args []string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	got := fmt.Sprintf("exit: %d\nstdout:\n%sstderr:\n%s", code, out.String(), errb.String())
	got = strings.ReplaceAll(got, dir, "$DIR")
	enginetest.Golden(t, filepath.Join("testdata", "ctl", name+".golden"), got, *update)
}

// waitWorkers waits until every worker has moved to generation gen (they are woken after a reload).
func waitWorkers(t *testing.T, sock string, gen uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, res, err := ctl.Call(sock, "core.workers", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var w ctl.WorkersResult
		if err := json.Unmarshal(res, &w); err != nil {
			t.Fatal(err)
		}
		all := true
		for _, x := range w.List {
			all = all && x.Generation == gen && !x.Busy
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers not all idle on generation %d: %s", gen, res)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
