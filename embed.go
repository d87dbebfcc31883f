// Package siplua holds the embedded default configuration and scripts, so that `siplua` with no flags
// serves on them.
package siplua

import "embed"

// Files holds config.toml and the scripts directory.
//
//go:embed config.toml scripts/default.lua scripts/examples
var Files embed.FS

// DefaultConfigName is how errors name the embedded configuration.
const DefaultConfigName = "config.toml (embedded)"
