// Package siplua holds the embedded default configuration and scripts, so that `siplua` with no flags
// serves on them.
package siplua

import "embed"

// Files holds config.toml, the default script with its route tests (siplua test) and the examples.
//
//go:embed config.toml scripts/default.lua scripts/default_test.lua scripts/examples
var Files embed.FS

// DefaultConfigName is how errors name the embedded configuration.
const DefaultConfigName = "config.toml (embedded)"
