package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is a whole siplua configuration file.
type Config struct {
	Core    CoreConfig                `toml:"core"`
	Lua     LuaConfig                 `toml:"lua"`
	Ctl     CtlConfig                 `toml:"ctl"`
	Metrics MetricsConfig             `toml:"metrics"`
	Modules map[string]toml.Primitive `toml:"modules"`

	// File is the configuration's path ("" for the embedded default); Dir resolves relative paths.
	File string `toml:"-"`
	Dir  string `toml:"-"`
	// Src is the file's text, kept to point errors at lines.
	Src []byte `toml:"-"`
	// Mods are the module instances with their decoded parameters.
	Mods *ModuleSet `toml:"-"`
	// FS holds the files of the embedded default configuration; nil for a configuration file.
	FS fs.FS `toml:"-"`
	// Listen is Core.Listen parsed.
	Listen []ListenAddr `toml:"-"`
}

// CoreConfig is the [core] table.
type CoreConfig struct {
	Listen            []string `toml:"listen"`
	Advertise         string   `toml:"advertise"`
	Aliases           []string `toml:"aliases"`
	Workers           int      `toml:"workers"`
	Queue             int      `toml:"queue"`
	ServerHeader      string   `toml:"server_header"`
	LogLevel          string   `toml:"log_level"`
	LogFormat         string   `toml:"log_format"`
	UDPReadSize       int      `toml:"udp_read_size"`
	TCPMaxConnections int      `toml:"tcp_max_connections"`
	TCPLifetime       int      `toml:"tcp_connection_lifetime"`
	ShutdownTimeout   int      `toml:"shutdown_timeout"`
}

// LuaConfig is the [lua] table.
type LuaConfig struct {
	Script string `toml:"script"`
	// Watch reloads when the configuration, the script or a file it requires changes.
	Watch bool `toml:"watch"`
}

// ListenAddr is one parsed [core] listen entry.
type ListenAddr struct {
	Proto Proto
	Addr  netip.AddrPort
}

func (l ListenAddr) String() string { return l.Proto.String() + ":" + l.Addr.String() }

// DefaultCore returns the [core] defaults.
func DefaultCore() CoreConfig {
	return CoreConfig{
		Listen:            []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"},
		Queue:             4096,
		ServerHeader:      "siplua",
		LogLevel:          "info",
		LogFormat:         "text",
		UDPReadSize:       65535,
		TCPMaxConnections: 2048,
		TCPLifetime:       120,
		ShutdownTimeout:   5,
	}
}

// ConfigError is a configuration problem with its place.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is a list of problems found at once.
type Errors []error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// LoadConfigFile reads and decodes a configuration file.
func LoadConfigFile(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", path, err)
	}
	return ParseConfig(src, path, filepath.Dir(abs))
}

// ParseConfig decodes a configuration strictly: unknown keys, wrong types and bad values are errors that
// name the file and line. Relative paths are resolved against dir.
func ParseConfig(src []byte, file, dir string) (*Config, error) {
	c := &Config{Core: DefaultCore(), Lua: LuaConfig{Script: "scripts/default.lua"}, Ctl: DefaultCtl(), File: file, Dir: dir, Src: src}
	md, err := toml.Decode(string(src), c)
	if err != nil {
		return nil, tomlError(file, src, err)
	}
	var errs Errors
	c.Mods = &ModuleSet{}
	for _, name := range RegisteredModules() {
		m, _ := LookupModule(name)
		prim, present := c.Modules[name]
		if !present && !m.Builtin {
			continue
		}
		inst := m.New()
		if present {
			if err := md.PrimitiveDecode(prim, inst); err != nil {
				errs = append(errs, tomlError(file, src, err))
				continue
			}
		}
		if v, ok := inst.(Validator); ok {
			if err := v.Validate(); err != nil {
				errs = append(errs, &ConfigError{File: file, Line: tableLine(src, "modules."+name), Msg: fmt.Sprintf("[modules.%s]: %v", name, err)})
				continue
			}
		}
		c.Mods.add(m, inst)
	}
	for name := range c.Modules {
		if _, ok := LookupModule(name); !ok {
			errs = append(errs, &ConfigError{File: file, Line: tableLine(src, "modules."+name),
				Msg: fmt.Sprintf("unknown module %q (available: %s)", name, strings.Join(RegisteredModules(), ", "))})
		}
	}
	for _, k := range md.Undecoded() {
		if len(k) == 2 && k[0] == "modules" {
			continue // an unknown module, reported above
		}
		errs = append(errs, &ConfigError{File: file, Line: keyLine(src, k), Msg: fmt.Sprintf("unknown key %q", k.String())})
	}
	errs = append(errs, c.validateCore()...)
	errs = append(errs, c.validateCtlMetrics()...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return c, nil
}

func (c *Config) validateCore() Errors {
	var errs Errors
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"core", key}), Msg: fmt.Sprintf("core.%s: ", key) + fmt.Sprintf(format, a...)})
	}
	if len(c.Core.Listen) == 0 {
		bad("listen", "at least one address is needed, e.g. \"udp:127.0.0.1:5060\"")
	}
	for _, s := range c.Core.Listen {
		la, err := ParseListen(s)
		if err != nil {
			bad("listen", "%v", err)
			continue
		}
		c.Listen = append(c.Listen, la)
	}
	if c.Core.Workers < 0 {
		bad("workers", "must be >= 0 (0 = derived from GOMAXPROCS), got %d", c.Core.Workers)
	}
	if c.Core.Queue < 1 {
		bad("queue", "must be >= 1, got %d", c.Core.Queue)
	}
	if _, err := ParseLogLevel(c.Core.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	if c.Core.LogFormat != "text" && c.Core.LogFormat != "json" {
		bad("log_format", "expected \"text\" or \"json\", got %q", c.Core.LogFormat)
	}
	if c.Core.UDPReadSize < 1500 || c.Core.UDPReadSize > 65535 {
		bad("udp_read_size", "expected 1500..65535, got %d", c.Core.UDPReadSize)
	}
	if c.Core.TCPMaxConnections < 1 {
		bad("tcp_max_connections", "must be >= 1, got %d", c.Core.TCPMaxConnections)
	}
	if c.Core.TCPLifetime < 1 {
		bad("tcp_connection_lifetime", "must be >= 1 (seconds), got %d", c.Core.TCPLifetime)
	}
	if c.Core.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "must be >= 0 (seconds), got %d", c.Core.ShutdownTimeout)
	}
	if c.Core.Advertise != "" {
		if _, _, err := SplitHostPort(c.Core.Advertise); err != nil {
			bad("advertise", "%v", err)
		}
	}
	if c.Lua.Script == "" {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"lua", "script"}), Msg: "lua.script: a script path is needed"})
	}
	return errs
}

// WorkerCount is the number of route workers: [core] workers, or by default two per CPU (workers also wait
// on DNS and sockets), at least 2.
func (c *Config) WorkerCount() int {
	if c.Core.Workers > 0 {
		return c.Core.Workers
	}
	return max(2, 2*runtime.GOMAXPROCS(0))
}

// ScriptPath is the routing script's path, resolved against the config's directory.
func (c *Config) ScriptPath() string { return c.Resolve(c.Lua.Script) }

// ParseListen parses "proto:host:port" ("udp:[::1]:5060").
func ParseListen(s string) (ListenAddr, error) {
	p, hp, ok := strings.Cut(s, ":")
	if !ok {
		return ListenAddr{}, fmt.Errorf("%q: expected proto:host:port, e.g. udp:127.0.0.1:5060", s)
	}
	proto, ok := ParseProto(p)
	if !ok {
		return ListenAddr{}, fmt.Errorf("%q: unknown protocol %q (expected udp or tcp)", s, p)
	}
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("%q: expected an IP address and port: %v", s, err)
	}
	return ListenAddr{Proto: proto, Addr: ap}, nil
}

// SplitHostPort splits "host[:port]" (IPv6 in brackets); port 0 when absent.
func SplitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty host")
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%q: missing ']'", s)
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if rest[0] != ':' {
			return "", 0, fmt.Errorf("%q: expected ':' after ']'", s)
		}
		port, err := strconv.Atoi(rest[1:])
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%q: bad port", s)
		}
		return host, port, nil
	}
	host, ps, ok := strings.Cut(s, ":")
	if !ok {
		return s, 0, nil
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("%q: expected host[:port]", s)
	}
	return host, port, nil
}

var lineRe = regexp.MustCompile(`line (\d+)`)

// tomlError turns a BurntSushi/toml error into file:line: message.
func tomlError(file string, src []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		return &ConfigError{File: file, Line: pe.Position.Line, Msg: msg}
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "toml: ")
	line := 0
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		// "line 3 (last key "core.workers"): incompatible types: ..." -> "core.workers: incompatible types: ..."
		if i := strings.Index(msg, "(last key \""); i >= 0 {
			rest := msg[i+len("(last key \""):]
			if j := strings.Index(rest, "\"):"); j >= 0 {
				msg = rest[:j] + ":" + rest[j+3:]
			}
		} else if j := strings.Index(msg, ": "); j >= 0 {
			msg = msg[j+2:]
		}
	}
	msg = strings.ReplaceAll(msg, "TOML value has type", "got")
	msg = strings.ReplaceAll(msg, "; destination has type", ", expected")
	return &ConfigError{File: file, Line: line, Msg: msg}
}

// tableLine finds the line of a [table] header such as "modules.sl".
func tableLine(src []byte, table string) int {
	want := strings.ReplaceAll(table, " ", "")
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[[") {
			name := strings.TrimSpace(strings.Trim(strings.SplitN(l, "]", 2)[0], "[]"))
			if strings.ReplaceAll(name, " ", "") == want {
				return n
			}
		}
	}
	return 0
}

// keyLine finds the line where a key path is set, looking in its table (or inline dotted keys).
func keyLine(src []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	table, key := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
	cur, n := "", 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") {
			cur = strings.ReplaceAll(strings.TrimSpace(strings.Trim(strings.SplitN(l, "]", 2)[0], "[]")), " ", "")
			continue
		}
		name, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		name = strings.Trim(strings.TrimSpace(name), `"`)
		full := name
		if cur != "" {
			full = cur + "." + name
		}
		if full == table+"."+key || (table == "" && full == key) {
			return n
		}
	}
	return 0
}

func sortErrors(errs Errors) {
	line := func(e error) int {
		var ce *ConfigError
		if errors.As(e, &ce) {
			return ce.Line
		}
		return 0
	}
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && line(errs[j]) < line(errs[j-1]); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// ParamNames lists the TOML keys of a module's parameter struct, for documentation.
func ParamNames(inst Instance) []string {
	t := reflect.TypeOf(inst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	if t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			names = append(names, strings.Split(tag, ",")[0])
		}
	}
	return names
}

// ReadFile reads a file named relative to the configuration: from the embedded files for the built-in
// default, otherwise from the config file's directory.
func (c *Config) ReadFile(name string) ([]byte, error) {
	if c.FS != nil && !filepath.IsAbs(name) {
		return fs.ReadFile(c.FS, filepath.ToSlash(name))
	}
	return os.ReadFile(c.Resolve(name))
}

// Resolve returns the path of a file named relative to the configuration.
func (c *Config) Resolve(name string) string {
	if filepath.IsAbs(name) || c.Dir == "" {
		return name
	}
	return filepath.Join(c.Dir, name)
}
