package rawsip

import (
	"strings"
	"testing"
)

// FirstValueEnd and FirstValueEndString agree, with and without the no-comma fast path.
func TestFirstValueEndString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"SIP/2.0/UDP h:5060;branch=z", 27},
		{"SIP/2.0/UDP a, SIP/2.0/UDP b", 13},
		{`"a,b" <sip:x>, <sip:y>`, 13},
		{"<sip:a;x=1,2>;p", 15},
		{`"a\",b" <sip:x>,y`, 15},
	} {
		if got := FirstValueEnd([]byte(tc.in)); got != tc.want {
			t.Errorf("FirstValueEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
		if got := FirstValueEndString(tc.in); got != tc.want {
			t.Errorf("FirstValueEndString(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestSplitValues: commas inside quotes and angle brackets do not split; the parts keep their spaces and
// add up to the value.
func TestSplitValues(t *testing.T) {
	for v, want := range map[string][]string{
		"a":                                   {"a"},
		"<sip:a@x;p=1,2>, \"B, C\" <sip:b@y>": {"<sip:a@x;p=1,2>", " \"B, C\" <sip:b@y>"},
		"SIP/2.0/UDP h1, SIP/2.0/TCP h2,":     {"SIP/2.0/UDP h1", " SIP/2.0/TCP h2", ""},
		`realm="a,b", nonce="n"`:              {`realm="a,b"`, ` nonce="n"`},
	} {
		got := SplitValues(v)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("SplitValues(%q) = %q, want %q", v, got, want)
		}
	}
}
