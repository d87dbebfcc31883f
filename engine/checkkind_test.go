package engine

import (
	"strings"
	"testing"
)

// refKind is the classification checkRaw made before checkKind: each name tried in turn with isHeader.
func refKind(name []byte) hdrKind {
	switch {
	case isHeader(name, "via", 'v'):
		return hVia
	case isHeader(name, "from", 'f'):
		return hFrom
	case isHeader(name, "to", 't'):
		return hTo
	case isHeader(name, "call-id", 'i'):
		return hCallID
	case isHeader(name, "cseq", 0):
		return hCSeq
	case isHeader(name, "contact", 'm'):
		return hContact
	case isHeader(name, "route", 0), isHeader(name, "record-route", 0), isHeader(name, "refer-to", 0),
		isHeader(name, "referred-by", 0):
		return hAddrList
	case isHeader(name, "max-forwards", 0):
		return hMaxForwards
	case isHeader(name, "content-length", 'l'):
		return hContentLength
	}
	return hOther
}

// checkKind agrees with the isHeader chain on every header name of the checks, their compact forms, case
// variants and near misses (same length and first letter).
func TestCheckKind(t *testing.T) {
	names := []string{"", "v", "f", "t", "i", "m", "l", "k", "x", "s", "c", "e", "r", "Via", "vIA", "Vix", "From", "Frog",
		"To", "Tx", "Call-ID", "CALL-ID", "Call-Ix", "Contact", "CONTACT", "Contacx", "Cabcdef", "CSeq", "Cseq",
		"Cseg", "Content-Length", "content-lengtx", "Content-Type", "Route", "Routx", "Record-Route",
		"Record-Routx", "Refer-To", "Refer-Tx", "Referred-By", "Referred-Bx", "Max-Forwards", "Max-Forwardx",
		"Expires", "User-Agent", "Allow", "Supported", "Require", "Call-Info", "Max-Expires", "Via2"}
	for _, n := range names {
		for _, v := range []string{n, strings.ToUpper(n), strings.ToLower(n)} {
			if got, want := checkKind([]byte(v)), refKind([]byte(v)); got != want {
				t.Errorf("checkKind(%q) = %d, want %d", v, got, want)
			}
		}
	}
}
