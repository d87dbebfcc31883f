package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

// BenchmarkEventSample is what an open page costs the process per interval (1 s): the counters read and
// the sample encoded. Nothing is paid per SIP message.
func BenchmarkEventSample(b *testing.B) {
	p := enginetest.Start(b, "[modules.sl]\n", "function ksr_request_route() end")
	h, err := newHandler(p.E, Options{})
	if err != nil {
		b.Fatal(err)
	}
	prev := h.read()
	b.ReportAllocs()
	for b.Loop() {
		cur := h.read()
		if _, err := json.Marshal(h.sample(prev, cur)); err != nil {
			b.Fatal(err)
		}
		prev = cur
	}
}

// BenchmarkOverview renders the overview page once (an operator's page load).
func BenchmarkOverview(b *testing.B) {
	p := enginetest.Start(b, "[modules.sl]\n[modules.tm]\n[modules.usrloc]\n", "function ksr_request_route() end")
	h, err := newHandler(p.E, Options{Commands: ModuleCommands(p.E.Config().Mods)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "127.0.0.1:8080" // the page answers loopback names only when it has no auth
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
