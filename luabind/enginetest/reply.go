package enginetest

// ReplyTo builds the reply with status code that a UAS sends to the request raw, the one StartUAS sends:
// the request's Vias, From, To (with a tag added when it has none), Call-ID, CSeq and Record-Route, no
// body. It is "" for an ACK or a response (nothing to answer), so a test's own UDP peer can answer
// whatever it receives.
func ReplyTo(raw string, code int) string {
	return uasReply(raw, func(string) int { return code })
}
