package rtpengine

import (
	"reflect"
	"testing"
)

func TestBencode(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"spam", "4:spam"},
		{"", "0:"},
		{int64(42), "i42e"},
		{int64(-3), "i-3e"},
		{int64(0), "i0e"},
		{[]any{"a", int64(1)}, "l1:ai1ee"},
		{map[string]any{"command": "ping", "a": []any{}}, "d1:ale7:command4:pinge"},
		{map[string]any{"flags": []any{"trust-address"}, "sdp": "v=0\r\n"}, "d5:flagsl13:trust-addresse3:sdp5:v=0\r\ne"},
	} {
		got, err := Encode(nil, tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("Encode(%v) = %q, %v; want %q", tc.v, got, err, tc.want)
			continue
		}
		back, err := Decode(got)
		if err != nil || !reflect.DeepEqual(back, tc.v) {
			t.Errorf("Decode(%q) = %#v, %v; want %#v", got, back, err, tc.v)
		}
	}
	for _, bad := range []string{"", "i", "ie", "i-0e", "i03e", "5:abc", "l", "d1:a", "di1ei2ee", "x", "4:spamextra",
		"-1:a", "01:a", "i1", "d3:abc", "99999999999:a"} {
		if v, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) = %#v, want an error", bad, v)
		}
	}
}

// FuzzBencode: Decode never panics, and what it accepts encodes back to a value that decodes the same.
func FuzzBencode(f *testing.F) {
	for _, s := range []string{"d6:result2:ok3:sdp5:v=0\r\ne", "li1ei-2e0:e", "d1:ad1:bl1:ceee", "i9223372036854775807e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(nil, v)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode %#v: %v", b, v, err)
		}
		back, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("round trip of %q: %#v, %v", b, back, err)
		}
	})
}

func BenchmarkBencodeOffer(b *testing.B) {
	msg := map[string]any{"command": "offer", "call-id": "a84b4c76e66710@pc33.atlanta.com", "from-tag": "1928301774",
		"flags": []any{"trust-address"}, "replace": []any{"origin", "session-connection"}, "ICE": "remove",
		"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"}
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf, _ = Encode(buf[:0], msg)
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
