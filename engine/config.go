package engine

import "github.com/siplua/siplua/engine/config"

// The configuration is decoded by engine/config; these names keep engine.Config, engine.ParseConfig ...
// working for the modules, luabind and cmd/siplua.
type (
	Config        = config.Config
	CoreConfig    = config.CoreConfig
	LuaConfig     = config.LuaConfig
	CtlConfig     = config.CtlConfig
	MetricsConfig = config.MetricsConfig
	WebConfig     = config.WebConfig
	ListenAddr    = config.ListenAddr
	ConfigError   = config.ConfigError
	Errors        = config.Errors
)

// DefaultRouteTimeout is [lua] route_timeout's default (milliseconds).
const DefaultRouteTimeout = config.DefaultRouteTimeout

// LoadConfigFile reads and decodes a configuration file.
func LoadConfigFile(path string) (*Config, error) { return config.LoadConfigFile(path) }

// ParseConfig decodes a configuration strictly (see config.ParseConfig).
func ParseConfig(src []byte, file, dir string) (*Config, error) {
	return config.ParseConfig(src, file, dir)
}

// DefaultCore returns the [core] defaults.
func DefaultCore() CoreConfig { return config.DefaultCore() }

// DefaultCtl returns the [ctl] defaults.
func DefaultCtl() CtlConfig { return config.DefaultCtl() }

// DefaultCtlSocket is where the control socket goes unless [ctl] socket says otherwise.
func DefaultCtlSocket() string { return config.DefaultCtlSocket() }

// ParseListen parses a [core] listen entry such as "udp:127.0.0.1:5060".
func ParseListen(s string) (ListenAddr, error) { return config.ParseListen(s) }

// SplitHostPort splits "host[:port]" (see config.SplitHostPort).
func SplitHostPort(s string) (string, int, error) { return config.SplitHostPort(s) }

// DNSServerAddr parses a dns_servers entry: "ip" or "ip:port" (port 53 by default).
func DNSServerAddr(s string) (string, error) { return config.DNSServerAddr(s) }

// Suggest returns the candidate closest to name when it is a plausible typo of it, or "".
func Suggest(name string, candidates []string) string { return config.Suggest(name, candidates) }

// ParamNames lists the TOML keys of a module's parameter struct, for documentation.
func ParamNames(inst Instance) []string { return config.ParamNames(inst) }
