package htable_test

import (
	"strconv"
	"testing"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
)

type (
	getFn = func(*engine.Msg, string, string) engine.Value
	incFn = func(*engine.Msg, string, string) int
)

func benchSetup(b *testing.B, cfg string) (*engine.Msg, getFn, incFn) {
	p := start(b, cfg)
	m := enginetest.Msg(b, p, enginetest.CRLF("OPTIONS sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@127.0.0.1>\nCall-ID: b1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"))
	get := p.Export(b, "htable", "sht_get").(getFn)
	inc := p.Export(b, "htable", "sht_inc").(incFn)
	set := p.Export(b, "htable", "sht_sets").(func(*engine.Msg, string, string, string) int)
	for i := range 1000 {
		set(m, "plain", "key"+strconv.Itoa(i), "value")
	}
	return m, get, inc
}

// BenchmarkShtGet is a read of an existing string item (the ban-list check of every request).
func BenchmarkShtGet(b *testing.B) {
	m, get, _ := benchSetup(b, tables)
	b.ReportAllocs()
	for b.Loop() {
		if v := get(m, "plain", "key500"); v.Kind != engine.Str {
			b.Fatal(v)
		}
	}
}

// BenchmarkShtInc is an increment of one counter (pike-like rate counting).
func BenchmarkShtInc(b *testing.B) {
	m, _, inc := benchSetup(b, tables)
	b.ReportAllocs()
	for b.Loop() {
		inc(m, "cnt", "hits")
	}
}

// BenchmarkShtIncParallel: every goroutine increments its own key of the same table (sharded locks).
func BenchmarkShtIncParallel(b *testing.B) {
	m, _, inc := benchSetup(b, tables)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			inc(m, "cnt", keys[i&63])
			i++
		}
	})
}

func BenchmarkShtGetRedis(b *testing.B) {
	r := enginetest.StartRedis(b)
	m, get, _ := benchSetup(b, redisTables(r.URL()))
	b.ReportAllocs()
	for b.Loop() {
		if v := get(m, "plain", "key500"); v.Kind != engine.Str {
			b.Fatal(v)
		}
	}
}

func BenchmarkShtIncRedis(b *testing.B) {
	r := enginetest.StartRedis(b)
	m, _, inc := benchSetup(b, redisTables(r.URL()))
	b.ReportAllocs()
	for b.Loop() {
		inc(m, "shared", "hits")
	}
}
