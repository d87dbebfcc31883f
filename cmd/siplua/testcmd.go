package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/routetest"
)

// testMain is `siplua test [-config FILE] [-v] [-run RE] [PATTERN]`: the route unit tests (*_test.lua next
// to the script), go test style; exit 1 when a test fails, 2 for bad usage.
func testMain(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("siplua test", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (default: the embedded config.toml)")
	verbose := fl.Bool("v", false, "print every test and its siptest.log lines, not only failures")
	runRE := fl.String("run", "", "run only the tests whose name matches this regular expression")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: siplua test [-config FILE] [-v] [-run REGEXP] [PATTERN]")
		fmt.Fprintln(stderr, "  PATTERN: test files next to the script (a glob; default NAME_test.lua and NAME_*_test.lua for NAME.lua)")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 1 {
		fl.Usage()
		return 2
	}
	o := routetest.Options{Verbose: *verbose, Out: stdout, Pattern: fl.Arg(0)}
	if *runRE != "" {
		re, err := regexp.Compile(*runRE)
		if err != nil {
			fmt.Fprintf(stderr, "siplua test: -run: %v\n", err)
			return 2
		}
		o.Run = re
	}
	o.Load = func() (*engine.Config, error) { return loadConfig(*cfgPath, nil) }
	sum, err := routetest.Run(o)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}
