package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/ctl"
)

const ctlUsage = `usage: siplua ctl [-s SOCKET | -config FILE] [-json] [-timeout DURATION] COMMAND [ARGS...]

Commands: core.version, core.uptime, core.reload (alias app_lua.reload), core.workers,
stats.get [PREFIX...], log.level [LEVEL], system.listMethods, and those of loaded modules.
Short forms: reload, version, uptime, workers, stats, level, methods.
`

// ctlMain is `siplua ctl`: one JSON-RPC call on the control socket, printed readably (or raw with -json).
// Exit status: 0 success, 1 the command failed or nothing listens, 2 usage.
func ctlMain(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("siplua ctl", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, ctlUsage); fl.PrintDefaults() }
	sock := fl.String("s", "", "control socket (default: [ctl] socket of -config, else $XDG_RUNTIME_DIR/siplua.ctl or /tmp/siplua-UID.ctl)")
	cfgPath := fl.String("config", "", "take the socket from this configuration file")
	raw := fl.Bool("json", false, "print the JSON-RPC response as received")
	timeout := fl.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	path := *sock
	if path == "" {
		path = engine.DefaultCtlSocket()
		if *cfgPath != "" {
			cfg, err := engine.LoadConfigFile(*cfgPath)
			if err != nil {
				printErrors(stderr, err)
				return 1
			}
			path = cfg.CtlSocket()
		}
	}
	method := fl.Arg(0)
	if full, ok := ctlShort[method]; ok {
		method = full
	}
	resp, result, err := ctl.Call(path, method, fl.Args()[1:], *timeout)
	if *raw && resp != nil {
		fmt.Fprintln(stdout, string(resp))
	}
	var rpcErr *ctl.Error
	switch {
	case errors.As(err, &rpcErr):
		if !*raw {
			fmt.Fprintf(stderr, "siplua ctl: %s: %s\n", method, rpcErr.Message)
			for _, l := range rpcErr.Lines() {
				fmt.Fprintln(stderr, l)
			}
		}
		return 1
	case errors.Is(err, ctl.ErrNotListening):
		fmt.Fprintf(stderr, "siplua ctl: nothing is listening on %s: is siplua running with [ctl] enabled on that socket? (-s SOCKET picks another)\n", path)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "siplua ctl: %v\n", err)
		return 1
	}
	if !*raw {
		printResult(stdout, result)
	}
	return 0
}

// printResult prints a JSON result for people: a string as is, a list one item a line, an object as
// sorted "key: value" lines, nested values indented.
func printResult(w io.Writer, result json.RawMessage) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(result))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		fmt.Fprintln(w, string(result))
		return
	}
	var b strings.Builder
	writeValue(&b, v, "")
	fmt.Fprint(w, b.String())
}

func writeValue(b *strings.Builder, v any, indent string) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if isScalar(v[k]) {
				fmt.Fprintf(b, "%s%s: %s\n", indent, k, scalar(v[k]))
				continue
			}
			fmt.Fprintf(b, "%s%s:\n", indent, k)
			writeValue(b, v[k], indent+"  ")
		}
	case []any:
		for _, item := range v {
			if isScalar(item) {
				fmt.Fprintf(b, "%s%s\n", indent, scalar(item))
				continue
			}
			// an object in a list: its fields on one line, as a table row
			if m, ok := item.(map[string]any); ok && flat(m) {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				parts := make([]string, len(keys))
				for i, k := range keys {
					parts[i] = k + "=" + scalar(m[k])
				}
				fmt.Fprintf(b, "%s%s\n", indent, strings.Join(parts, " "))
				continue
			}
			fmt.Fprintf(b, "%s-\n", indent)
			writeValue(b, item, indent+"  ")
		}
	default:
		fmt.Fprintf(b, "%s%s\n", indent, scalar(v))
	}
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

func flat(m map[string]any) bool {
	for _, x := range m {
		if !isScalar(x) {
			return false
		}
	}
	return true
}

func scalar(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}

// ctlShort are the short forms of the core commands: `siplua ctl reload` is `siplua ctl core.reload`.
var ctlShort = map[string]string{
	"reload": "core.reload", "version": "core.version", "uptime": "core.uptime", "workers": "core.workers",
	"stats": "stats.get", "level": "log.level", "methods": "system.listMethods",
}
