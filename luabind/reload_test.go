package luabind

import (
	"errors"
	"testing"
)

func TestPlaceFirst(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/d/s.lua: running top-level chunk: /d/s.lua:2: attempt to index a non-table object(nil) with key 'field'",
			"/d/s.lua:2: attempt to index a non-table object(nil) with key 'field' (running the top-level chunk)"},
		{"/d/s.lua: running top-level chunk: /d/s.lua:1: /d/lib.lua:2: syntax error near ','",
			"/d/lib.lua:2: syntax error near ',' (required from /d/s.lua:1)"},
		{"/d/s.lua: running top-level chunk: /d/s.lua:1: /d/a.lua:3: /d/b.lua:4: boom",
			"/d/b.lua:4: boom (required from /d/a.lua:3, from /d/s.lua:1)"},
		{"/d/s.lua: function ksr_request_route is not defined", "/d/s.lua: function ksr_request_route is not defined"},
	} {
		if got := placeFirst(errors.New(tc.in)).Error(); got != tc.want {
			t.Errorf("placeFirst(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
