package rawsip

import "testing"

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
