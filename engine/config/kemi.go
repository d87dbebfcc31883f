package config

import (
	"fmt"

	"github.com/BurntSushi/toml"
)

// KemiConfig is the [kemi] table: the script functions Kamailio's KEMI core calls by name
// (kamailio.cfg's kemi.* global parameters), "" = none.
type KemiConfig struct {
	// OnsendRouteCallback runs before a request is sent out (Kamailio's onsend_route): KSR.drop() there
	// stops the send.
	OnsendRouteCallback string `toml:"onsend_route_callback"`
	// ReplyRouteCallback runs for replies that no transaction takes (Kamailio's reply_route).
	ReplyRouteCallback string `toml:"reply_route_callback"`
	// ReceivedRouteCallback runs for every message received, before anything else (Kamailio's
	// event_route[core:msg-received]); KSR.drop() there discards the message.
	ReceivedRouteCallback string `toml:"received_route_callback"`
	// PreRoutingCallback runs with "core:pre-routing" for every well-formed message before its request or
	// reply route (Kamailio's event_route[core:pre-routing]); KSR.drop() there ends its processing.
	PreRoutingCallback string `toml:"pre_routing_callback"`
	// Set marks a KemiConfig made by DefaultKemi (so by ParseConfig): a Config built in Go has the zero
	// value, which Effective turns into the defaults.
	Set bool `toml:"-"`
}

// Effective is k, or the defaults for a Config built in Go without them.
func (k KemiConfig) Effective() KemiConfig {
	if !k.Set {
		return DefaultKemi()
	}
	return k
}

// DefaultKemi returns Kamailio's defaults: ksr_onsend_route and ksr_reply_route, no received or
// pre-routing callback.
func DefaultKemi() KemiConfig {
	return KemiConfig{OnsendRouteCallback: "ksr_onsend_route", ReplyRouteCallback: "ksr_reply_route", Set: true}
}

// validateKemi checks that each callback is a Lua function name or "".
func (c *Config) validateKemi() Errors {
	var errs Errors
	for _, k := range []struct{ key, v string }{
		{"onsend_route_callback", c.Kemi.OnsendRouteCallback},
		{"reply_route_callback", c.Kemi.ReplyRouteCallback},
		{"received_route_callback", c.Kemi.ReceivedRouteCallback},
		{"pre_routing_callback", c.Kemi.PreRoutingCallback},
	} {
		if k.v != "" && !luaName(k.v) {
			errs = append(errs, &ConfigError{File: c.File, Line: keyLine(c.Src, toml.Key{"kemi", k.key}),
				Msg: fmt.Sprintf("kemi.%s: expected a Lua function name or \"\", got %q", k.key, k.v)})
		}
	}
	return errs
}

func luaName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}
