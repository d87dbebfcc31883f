// Command siplua is a SIP proxy routed by Lua scripts written against Kamailio's KEMI API.
//
//	siplua [-config FILE]        serve (no flag: the embedded default configuration and script)
//	siplua -c [-strict] [-config FILE]  check configuration and script, print problems as file:line: message
//	                             (-strict: the script's warnings are errors too)
//	siplua ctl [-s SOCKET] CMD [ARGS...]  call the control socket of a running siplua
//	siplua test [-config FILE] [-v] [-run RE] [PATTERN]  run the route tests (*_test.lua next to the script)
//	siplua stubs [-o FILE] [-config FILE]  write the LuaLS definitions of KSR for editors
//	siplua version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/siplua/siplua"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	_ "github.com/siplua/siplua/modules/all"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintf(stdout, "siplua %s\n", Version)
		return 0
	}
	if len(args) > 0 && args[0] == "ctl" {
		return ctlMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "test" {
		return testMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "stubs" {
		return stubsMain(args[1:], stdout, stderr)
	}
	fl := flag.NewFlagSet("siplua", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (default: the embedded config.toml)")
	check := fl.Bool("c", false, "check the configuration and script, then exit")
	strict := fl.Bool("strict", false, "with -c: the script's warnings are errors (exit 1)")
	var listen listFlag
	fl.Var(&listen, "l", "listen on `proto:addr:port` instead of [core] listen (repeatable, as Kamailio's -l)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "siplua: unexpected argument %q (commands: version, ctl, test, stubs)\n", fl.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*cfgPath, listen)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if *check {
		errs, warns := luabind.Check(cfg), luabind.LintConfig(cfg)
		if len(errs) > 0 || *strict && len(warns) > 0 {
			for _, e := range errs {
				printErrors(stderr, e)
			}
			for _, w := range warns {
				fmt.Fprintln(stderr, w)
			}
			return 1
		}
		for _, w := range warns {
			fmt.Fprintln(stderr, w)
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintln(stderr, w)
		}
		fmt.Fprintln(stdout, "config OK")
		return 0
	}
	return serve(cfg, *cfgPath, listen, stderr)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// loadConfig reads the configuration file (the embedded one when path is empty) and applies -l.
func loadConfig(path string, listen []string) (*engine.Config, error) {
	cfg, err := readConfig(path)
	if err != nil || len(listen) == 0 {
		return cfg, err
	}
	return cfg, cfg.SetListen(listen)
}

func readConfig(path string) (*engine.Config, error) {
	if path != "" {
		return engine.LoadConfigFile(path)
	}
	src, err := fs.ReadFile(siplua.Files, "config.toml")
	if err != nil {
		return nil, fmt.Errorf("embedded config: %w", err)
	}
	cfg, err := engine.ParseConfig(src, siplua.DefaultConfigName, "")
	if err != nil {
		return nil, err
	}
	cfg.FS = siplua.Files
	return cfg, nil
}

func printErrors(w io.Writer, err error) {
	var es engine.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func serve(cfg *engine.Config, cfgPath string, listen []string, stderr io.Writer) int {
	log, level := engine.NewLogger(stderr, cfg.Core)
	// checked as -c does, so that a reload cannot swap in a script that -c rejects
	e, err := engine.New(cfg, luabind.Checked(log), log)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	e.SetLevelVar(level)
	if err := e.Listen(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &reloader{e: e, cfgPath: cfgPath, listen: listen, log: log.With("module", "reload")}
	r.onSIGHUP(ctx)
	r.updateWatch()
	defer r.close()
	stopControl, err := startControl(e, cfg, r, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer stopControl()
	if err := e.Serve(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
