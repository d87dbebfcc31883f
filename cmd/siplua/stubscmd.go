package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/siplua/siplua/luabind"
)

// stubsMain is `siplua stubs [-o FILE] [-config FILE]`: the LuaLS definition file of KSR (---@meta), for
// editor completion and checks; every known module, or with -config only the modules that configuration
// loads.
func stubsMain(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("siplua stubs", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("o", "", "write the stubs to this file (default: standard output)")
	cfgPath := fl.String("config", "", "only the modules this configuration loads (default: every module siplua has)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "siplua stubs: unexpected argument %q\n", fl.Arg(0))
		return 2
	}
	mods := luabind.AllModules()
	if *cfgPath != "" {
		cfg, err := loadConfig(*cfgPath, nil)
		if err != nil {
			printErrors(stderr, err)
			return 1
		}
		mods = cfg.Mods.List
	}
	src := luabind.Stubs(mods)
	if *out == "" {
		fmt.Fprint(stdout, src)
		return 0
	}
	if err := os.WriteFile(*out, []byte(src), 0o644); err != nil {
		fmt.Fprintf(stderr, "siplua stubs: %v\n", err)
		return 1
	}
	return 0
}
