package registrar

import "testing"

// paramsByName is what contact.params must equal: rawsip.Param (through param) once per parameter.
func paramsByName(params string) contact {
	var c contact
	c.expires, c.hasExp = param(params, "expires")
	c.q, c.hasQ = param(params, "q")
	c.received, _ = param(params, "received")
	c.methods, c.hasMeth = param(params, "methods")
	c.instance, _ = param(params, "+sip.instance")
	c.regID, _ = param(params, "reg-id")
	return c
}

var paramCases = []string{
	"",
	";expires=3600",
	" ; Expires = 60 ;q=0.5",
	";expires=1;expires=2;q=1;q=0",
	";+sip.instance=\"<urn:uuid:1;2,3>\";reg-id=1;received=\"sip:1.2.3.4:5;transport=tcp\"",
	";methods=\"INVITE, BYE\";Q;EXPIRES",
	";x=\"unterminated;expires=5",
	"junk;expires=7,q=0.1;reg-id=2",
	";;;=;expires;received=",
	";REG-ID=\"3\";+SIP.INSTANCE=abc",
}

func TestContactParamsOnePass(t *testing.T) {
	for _, p := range paramCases {
		var got contact
		got.params(p)
		if want := paramsByName(p); got != want {
			t.Errorf("params(%q):\n got %+v\nwant %+v", p, got, want)
		}
	}
}

func FuzzContactParams(f *testing.F) {
	for _, p := range paramCases {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		var got contact
		got.params(p)
		if want := paramsByName(p); got != want {
			t.Errorf("params(%q):\n got %+v\nwant %+v", p, got, want)
		}
	})
}
