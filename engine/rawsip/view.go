package rawsip

import "unsafe"

// View is b as a string without a copy, for parsing parts of a message in place. The string is only valid
// while b is neither changed nor reused: never keep it past the route (strings.Clone what is kept).
func View(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
