// Package config decodes and checks siplua's TOML configuration strictly (every unknown key, wrong type and
// bad value reported with its line) and holds the module registry the [modules.NAME] tables are decoded
// against.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/siplua/siplua/engine/transport"
)

// Config is a whole siplua configuration file.
type Config struct {
	Core      CoreConfig                `toml:"core"`
	Lua       LuaConfig                 `toml:"lua"`
	Ctl       CtlConfig                 `toml:"ctl"`
	Metrics   MetricsConfig             `toml:"metrics"`
	Web       WebConfig                 `toml:"web"`
	TLS       TLSConfig                 `toml:"tls"`
	WebSocket WebSocketConfig           `toml:"websocket"`
	Kemi      KemiConfig                `toml:"kemi"` // kemi.go
	Modules   map[string]toml.Primitive `toml:"modules"`

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

	// DNS (engine/resolve): servers as "ip[:port]" (none: /etc/resolv.conf), the timeout of one query in
	// seconds, how many lookups may run at once, how many names are cached and how long a failed lookup is
	// remembered (seconds, Kamailio's dns_neg_cache_ttl).
	DNSServers     []string `toml:"dns_servers"`
	DNSTimeout     int      `toml:"dns_timeout"`
	DNSMaxInflight int      `toml:"dns_max_inflight"`
	DNSCacheSize   int      `toml:"dns_cache_size"`
	DNSNegTTL      int      `toml:"dns_neg_ttl"`
	// Overload is what a new request gets when the queue is full: "503" (with Retry-After: RetryAfter
	// seconds) or "drop".
	Overload   string `toml:"overload"`
	RetryAfter int    `toml:"retry_after"`
	// UDPMTU: a request bigger than UDPMTU-200 bytes goes over TCP when UDPMTUTryTCP and the destination does
	// not force a transport (RFC 3261 §18.1.1).
	UDPMTU       int  `toml:"udp_mtu"`
	UDPMTUTryTCP bool `toml:"udp_mtu_try_tcp"`
}

// LuaConfig is the [lua] table.
type LuaConfig struct {
	Script string `toml:"script"`
	// Watch reloads when the configuration, the script or a file it requires changes.
	Watch bool `toml:"watch"`
	// RouteTimeout bounds every Lua call (a route, a failure/branch/onreply route, the top-level chunk) in
	// milliseconds: an overrun is cancelled, the request gets 500 and the worker goes on.
	RouteTimeout int `toml:"route_timeout"`
}

// DefaultRouteTimeout is [lua] route_timeout's default (milliseconds).
const DefaultRouteTimeout = 100

// RouteBudget is route_timeout as a duration (the default when unset, e.g. a Config built in Go).
func (l LuaConfig) RouteBudget() time.Duration {
	if l.RouteTimeout <= 0 {
		return DefaultRouteTimeout * time.Millisecond
	}
	return time.Duration(l.RouteTimeout) * time.Millisecond
}

// ListenAddr is one parsed [core] listen entry.
type ListenAddr struct {
	Proto transport.Proto
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
		DNSTimeout:        2,
		DNSMaxInflight:    64,
		DNSCacheSize:      4096,
		DNSNegTTL:         60,
		Overload:          "503",
		RetryAfter:        5,
		UDPMTU:            1500,
		UDPMTUTryTCP:      true,
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
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: cannot read the configuration file: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", path, err)
	}
	return ParseConfig(src, path, filepath.Dir(abs))
}

// ParseConfig decodes a configuration strictly: unknown keys, wrong types and bad values are errors that
// name the file and line. Every problem found is reported, not only the first. Relative paths are resolved
// against dir.
func ParseConfig(src []byte, file, dir string) (*Config, error) {
	c := &Config{Core: DefaultCore(), Lua: LuaConfig{Script: "scripts/default.lua", RouteTimeout: DefaultRouteTimeout}, Ctl: DefaultCtl(), TLS: DefaultTLS(), WebSocket: DefaultWebSocket(), Kemi: DefaultKemi(), File: file, Dir: dir, Src: src}
	// Tables are decoded key by key (not in one toml.Decode) so that one wrong type does not hide the rest.
	var raw struct {
		Core      toml.Primitive            `toml:"core"`
		Lua       toml.Primitive            `toml:"lua"`
		Ctl       toml.Primitive            `toml:"ctl"`
		Metrics   toml.Primitive            `toml:"metrics"`
		Web       toml.Primitive            `toml:"web"`
		TLS       toml.Primitive            `toml:"tls"`
		WebSocket toml.Primitive            `toml:"websocket"`
		Kemi      toml.Primitive            `toml:"kemi"`
		Modules   map[string]toml.Primitive `toml:"modules"`
	}
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		return nil, tomlError(file, src, err)
	}
	d := &strictDecoder{md: md, file: file, src: src, reported: map[string]bool{}}
	if md.IsDefined("core") {
		d.table(raw.Core, toml.Key{"core"}, &c.Core)
	}
	if md.IsDefined("lua") {
		d.table(raw.Lua, toml.Key{"lua"}, &c.Lua)
	}
	if md.IsDefined("ctl") {
		d.table(raw.Ctl, toml.Key{"ctl"}, &c.Ctl)
	}
	if md.IsDefined("metrics") {
		d.table(raw.Metrics, toml.Key{"metrics"}, &c.Metrics)
	}
	if md.IsDefined("web") {
		d.table(raw.Web, toml.Key{"web"}, &c.Web)
	}
	if md.IsDefined("tls") {
		d.table(raw.TLS, toml.Key{"tls"}, &c.TLS)
	}
	if md.IsDefined("websocket") {
		d.table(raw.WebSocket, toml.Key{"websocket"}, &c.WebSocket)
	}
	if md.IsDefined("kemi") {
		d.table(raw.Kemi, toml.Key{"kemi"}, &c.Kemi)
	}
	c.Modules = raw.Modules
	c.Mods = &ModuleSet{}
	for _, name := range RegisteredModules() {
		m, _ := LookupModule(name)
		prim, present := c.Modules[name]
		if !present && !m.Builtin {
			continue
		}
		inst := m.New()
		if present && !d.table(prim, toml.Key{"modules", name}, inst) {
			continue
		}
		if v, ok := inst.(Validator); ok {
			if err := v.Validate(); err != nil {
				d.add(TableLine(src, "modules."+name), "[modules.%s]: %v", name, err)
				continue
			}
		}
		c.Mods.Add(m, inst)
	}
	for _, l := range c.Mods.List {
		for _, need := range l.Requires {
			if _, ok := c.Mods.Get(need); !ok {
				d.add(TableLine(src, "modules."+l.Name), "[modules.%s]: needs module %s: add a [modules.%s] table", l.Name, need, need)
			}
		}
	}
	c.Mods.orderByDependencies()
	var unknown []string
	for name := range c.Modules {
		if _, ok := LookupModule(name); !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		d.reported["modules."+name] = true
		d.add(TableLine(src, "modules."+name), "unknown module %q%s; the modules are: %s", name,
			didYouMean(name, RegisteredModules()), strings.Join(RegisteredModules(), ", "))
	}
	for _, k := range md.Undecoded() {
		d.unknownKey(k)
	}
	errs := append(append(d.errs, c.validateCore()...), c.validateKemi()...)
	errs = append(errs, c.validateCtlMetrics()...)
	errs = append(errs, c.validateWeb()...)
	errs = append(errs, c.validateTLS()...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return c, nil
}

// strictDecoder decodes tables key by key and collects every problem with its line.
type strictDecoder struct {
	md       toml.MetaData
	file     string
	src      []byte
	errs     Errors
	reported map[string]bool // keys already reported, so their sub-keys are not reported again
}

func (d *strictDecoder) add(line int, format string, a ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Msg: fmt.Sprintf(format, a...)})
}

// table decodes the TOML table prim (at key path) into the struct dst, reporting unknown keys and wrong
// types; false when anything was wrong.
func (d *strictDecoder) table(prim toml.Primitive, path toml.Key, dst any) bool {
	var keys map[string]toml.Primitive
	// A table defined only through its subtables ([modules.htable.tables.x] without [modules.htable]) has
	// no type of its own in the metadata: the decode into a map below tells whether it is a table.
	if t := d.md.Type(path...); t != "" && !isTable(t) {
		d.reported[path.String()] = true
		d.add(keyOrTableLine(d.src, path), "%s: expected a table, got %s", path, d.describe(path))
		return false
	}
	if err := d.md.PrimitiveDecode(prim, &keys); err != nil {
		d.reported[path.String()] = true
		d.add(keyOrTableLine(d.src, path), "%s: expected a table, got %s", path, d.describe(path))
		return false
	}
	fields := structFields(dst)
	names := slices.Sorted(maps.Keys(fields))
	ok := true
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		key := append(slices.Clip(path), k)
		f, known := fields[k]
		if !known {
			d.reported[key.String()] = true
			d.add(keyOrTableLine(d.src, key), "unknown key %q%s; %s", key.String(), didYouMean(k, names), knownKeys(path, names))
			ok = false
			continue
		}
		if err := d.md.PrimitiveDecode(keys[k], f.Addr().Interface()); err != nil {
			d.reported[key.String()] = true
			d.valueError(key, f, err)
			ok = false
		}
	}
	return ok
}

// valueError reports a key whose value does not decode into its field: with what was expected and what was
// given for a type mismatch, otherwise with the decoder's (or the type's UnmarshalText) message.
func (d *strictDecoder) valueError(key toml.Key, f reflect.Value, err error) {
	line := keyLine(d.src, key)
	if strings.Contains(err.Error(), "incompatible types") || strings.Contains(err.Error(), "cannot decode") {
		d.add(line, "%s: expected %s, got %s", key, expectedType(f.Type()), d.describe(key))
		return
	}
	ce := tomlError(d.file, d.src, err).(*ConfigError)
	msg := ce.Msg
	if !strings.HasPrefix(msg, key.String()) {
		msg = key.String() + ": " + msg
	}
	d.add(line, "%s", msg)
}

// describe names the TOML type of the value at key, with the value itself when it is short.
func (d *strictDecoder) describe(key toml.Key) string {
	t := d.md.Type(key...)
	article := map[string]string{"String": "a string", "Integer": "an integer", "Float": "a float",
		"Bool": "a boolean", "Array": "an array", "Hash": "a table",
		"Datetime": "a date-time", "Date": "a date", "Time": "a time", "DatetimeLocal": "a local date-time"}[t]
	if article == "" {
		article = strings.ToLower(t)
	}
	if t == "String" || t == "Integer" || t == "Float" || t == "Bool" {
		if v := valueText(d.src, keyLine(d.src, key)); v != "" && len(v) <= 40 {
			return article + " (" + v + ")"
		}
	}
	return article
}

// valueText is the text after "=" on a line, without a trailing comment.
func valueText(src []byte, line int) string {
	if line <= 0 {
		return ""
	}
	lines := strings.Split(string(src), "\n")
	if line > len(lines) {
		return ""
	}
	_, v, ok := strings.Cut(lines[line-1], "=")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "'") {
		if i := strings.IndexByte(v, '#'); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
	} else if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
		v = v[:end+2]
	}
	return v
}

var durationType = reflect.TypeFor[time.Duration]()

// expectedType says in words what TOML value decodes into t.
func expectedType(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "5s"`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		if e := expectedType(t.Elem()); strings.HasPrefix(e, "a ") || strings.HasPrefix(e, "an ") {
			return "an array of " + strings.SplitN(e, " ", 2)[1] + "s"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a table"
	case reflect.Pointer:
		return expectedType(t.Elem())
	}
	return t.String()
}

// unknownKey reports a key that no table decoded, unless it lies under one already reported.
func (d *strictDecoder) unknownKey(k toml.Key) {
	for i := 1; i <= len(k); i++ {
		if d.reported[k[:i].String()] {
			return
		}
	}
	d.reported[k.String()] = true
	if len(k) == 1 {
		if isTable(d.md.Type(k...)) {
			hint := ""
			if sim := Suggest(k[0], []string{"core", "lua", "ctl", "metrics", "web", "tls", "websocket", "modules"}); sim != "" {
				hint = " (did you mean [" + sim + "]?)"
			}
			d.add(TableLine(d.src, k[0]), "unknown table [%s]%s; the tables are [core], [lua], [ctl], [metrics], [web], [tls], [websocket] and [modules.NAME]", k[0], hint)
			return
		}
		d.add(keyLine(d.src, k), "unknown key %q at the top level; keys belong in the [core], [lua], [ctl], [metrics], [web], [tls], [websocket] or [modules.NAME] tables", k[0])
		return
	}
	d.add(keyOrTableLine(d.src, k), "unknown key %q", k.String())
}

// isTable tells a TOML table (BurntSushi/toml calls tables, inline or not, "Hash") from other values.
func isTable(tomlType string) bool { return tomlType == "Hash" || tomlType == "Table" }

func knownKeys(table toml.Key, names []string) string {
	if len(names) == 0 {
		return fmt.Sprintf("[%s] takes no keys", table)
	}
	return fmt.Sprintf("[%s] keys are: %s", table, strings.Join(names, ", "))
}

// structFields maps the toml names of a struct's fields to the fields.
func structFields(dst any) map[string]reflect.Value {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	out := map[string]reflect.Value{}
	if v.Kind() != reflect.Struct {
		return out
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := strings.Split(sf.Tag.Get("toml"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out[name] = v.Field(i)
	}
	return out
}

// Suggest returns the candidate closest to name when it is a plausible typo of it (edit distance at most a
// third of its length, at least 1), or "".
func Suggest(name string, candidates []string) string {
	limit := max(1, len(name)/3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

func didYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// KeyLine is the line where a key such as "lua", "script" is set, 0 when it is not in the file.
func (c *Config) KeyLine(path ...string) int { return keyLine(c.Src, toml.Key(path)) }

func keyOrTableLine(src []byte, k toml.Key) int {
	if n := TableLine(src, k.String()); n > 0 {
		return n
	}
	return keyLine(src, k)
}

func (c *Config) validateCore() Errors {
	var errs Errors
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"core", key}), Msg: fmt.Sprintf("core.%s: ", key) + fmt.Sprintf(format, a...)})
	}
	if len(c.Core.Listen) == 0 {
		bad("listen", "expected at least one address such as \"udp:127.0.0.1:5060\"")
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
		bad("workers", "expected 0 (two per CPU) or more, got %d", c.Core.Workers)
	}
	if c.Core.Queue < 1 {
		bad("queue", "expected 1 or more messages, got %d", c.Core.Queue)
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
		bad("tcp_max_connections", "expected 1 or more connections, got %d", c.Core.TCPMaxConnections)
	}
	if c.Core.TCPLifetime < 1 {
		bad("tcp_connection_lifetime", "expected 1 or more seconds, got %d", c.Core.TCPLifetime)
	}
	if c.Core.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "expected 0 or more seconds, got %d", c.Core.ShutdownTimeout)
	}
	if c.Core.Advertise != "" {
		if _, _, err := SplitHostPort(c.Core.Advertise); err != nil {
			bad("advertise", "%v", err)
		}
	}
	for _, s := range c.Core.DNSServers {
		if _, err := DNSServerAddr(s); err != nil {
			bad("dns_servers", "%v", err)
		}
	}
	if c.Core.DNSTimeout < 1 {
		bad("dns_timeout", "expected 1 or more seconds, got %d", c.Core.DNSTimeout)
	}
	if c.Core.DNSMaxInflight < 1 {
		bad("dns_max_inflight", "expected 1 or more lookups, got %d", c.Core.DNSMaxInflight)
	}
	if c.Core.DNSCacheSize < 1 {
		bad("dns_cache_size", "expected 1 or more names, got %d", c.Core.DNSCacheSize)
	}
	if c.Core.DNSNegTTL < 1 {
		bad("dns_neg_ttl", "expected 1 or more seconds, got %d", c.Core.DNSNegTTL)
	}
	if c.Core.Overload != "503" && c.Core.Overload != "drop" {
		bad("overload", "expected \"503\" or \"drop\", got %q", c.Core.Overload)
	}
	if c.Core.RetryAfter < 0 {
		bad("retry_after", "expected 0 or more seconds, got %d", c.Core.RetryAfter)
	}
	if c.Core.UDPMTU < 576 || c.Core.UDPMTU > 65535 {
		bad("udp_mtu", "expected 576..65535 bytes, got %d", c.Core.UDPMTU)
	}
	if c.Lua.RouteTimeout < 1 || c.Lua.RouteTimeout > 60000 {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"lua", "route_timeout"}),
			Msg: fmt.Sprintf("lua.route_timeout: expected 1..60000 milliseconds, got %d", c.Lua.RouteTimeout)})
	}
	if c.Lua.Script == "" {
		errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"lua", "script"}), Msg: "lua.script: expected the path of the routing script, got \"\""})
	}
	return errs
}

// DNSServerAddr parses a dns_servers entry: "ip" or "ip:port" (port 53 by default).
func DNSServerAddr(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("%q: expected an IP address with an optional port such as \"127.0.0.1:53\" or \"[::1]:53\"", s)
}

// Warnings are settings that work but are likely a mistake, as "file:line: warning: ..." (siplua -c
// prints them; the engine logs them at start).
func (c *Config) Warnings() []string {
	var ws []string
	if c.Core.Advertise == "" {
		for _, la := range c.Listen {
			if la.Addr.Addr().IsUnspecified() {
				loc := c.File
				if l := keyLine(c.Src, toml.Key{"core", "listen"}); l > 0 {
					loc = fmt.Sprintf("%s:%d", c.File, l)
				}
				ws = append(ws, fmt.Sprintf("%s: warning: core.listen %s is a wildcard and core.advertise is not set: "+
					"Via and Record-Route name the local address chosen per destination, which peers behind NAT "+
					"cannot reach; set advertise to the public address", loc, la))
				break
			}
		}
	}
	return ws
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
		return ListenAddr{}, fmt.Errorf("%q: expected proto:host:port such as udp:127.0.0.1:5060", s)
	}
	proto, ok := transport.ParseProto(p)
	if !ok {
		return ListenAddr{}, fmt.Errorf("%q: unknown protocol %q (expected udp, tcp, tls, ws or wss)", s, p)
	}
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("%q: expected an IP address and port such as 127.0.0.1:5060 or [::1]:5060 after %q (host names are not allowed)", s, p+":")
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
			return "", 0, fmt.Errorf("%q: expected a port 1..65535 after ']:'", s)
		}
		return host, port, nil
	}
	host, ps, ok := strings.Cut(s, ":")
	if !ok {
		return s, 0, nil
	}
	port, err := strconv.Atoi(ps)
	if host == "" || strings.Contains(ps, ":") {
		return "", 0, fmt.Errorf("%q: expected host[:port] (an IPv6 address in brackets)", s)
	}
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: expected host[:port] with a port 1..65535", s)
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
		msg = "TOML syntax error: " + msg
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
func TableLine(src []byte, table string) int {
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

// ParseLogLevel accepts Kamailio-ish names: debug, info, notice, warn(ing), err(or), crit.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug", "dbg":
		return slog.LevelDebug, nil
	case "info", "notice":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error", "crit", "alert":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (expected debug, info, warn or error)", s)
}

// SetListen replaces [core] listen with addresses given on the command line (siplua -l), checked as the
// file's would be; reloads keep them (the caller applies them to every configuration it loads).
func (c *Config) SetListen(addrs []string) error {
	var ls []ListenAddr
	for _, s := range addrs {
		la, err := ParseListen(s)
		if err != nil {
			return fmt.Errorf("-l %q: %w", s, err)
		}
		ls = append(ls, la)
	}
	c.Core.Listen, c.Listen = addrs, ls
	return nil
}
