package dialog

import (
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(d *Dialog)
		want string // "" = valid
	}{
		{"defaults", func(*Dialog) {}, ""},
		{"zero timeout", func(d *Dialog) { d.DefaultTimeout = 0 }, "default_timeout"},
		{"flag out of range", func(d *Dialog) { d.DlgFlag = 64 }, "dlg_flag"},
		{"negative ka", func(d *Dialog) { d.KaInterval = -1 }, "ka_interval"},
		{"profile twice", func(d *Dialog) { d.ProfilesWithValue = []string{"a"}; d.ProfilesNoValue = []string{"a"} }, "named twice"},
		{"bad backend", func(d *Dialog) { d.Backend = "db" }, "backend"},
		{"bad redis url", func(d *Dialog) { d.Backend = "redis"; d.RedisURL = "nope" }, "redis_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New()
			tc.set(d)
			err := d.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"<sip:a;lr>", []string{"<sip:a;lr>"}},
		{"<sip:a;lr>, <sip:b;lr>", []string{"<sip:a;lr>", "<sip:b;lr>"}},
		{`"x, y" <sip:a;lr>,<sip:b?h=1,2>`, []string{`"x, y" <sip:a;lr>`, "<sip:b?h=1,2>"}},
		{"", nil},
	} {
		if got := splitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCalleeRoutes(t *testing.T) {
	d := New()
	// The Record-Route of a 2xx, top first: P3 (next to the callee), P2 (next to this proxy), then the
	// caller side's P0 (this proxy's own entry is left out: without an engine none is recognised).
	rr := []string{"<sip:p3;lr>", "<sip:p2;lr>", "<sip:p0;lr>"}
	if got := d.calleeRoutes(rr, 1); !slices.Equal(got, []string{"<sip:p2;lr>", "<sip:p3;lr>"}) {
		t.Errorf("calleeRoutes = %q", got)
	}
	if got := d.calleeRoutes(rr[2:], 1); got != nil {
		t.Errorf("no callee-side routes: got %q", got)
	}
}
