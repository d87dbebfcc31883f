package pv

import (
	"errors"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// Assigning $fu, $fU, $fd, $fn, $tu, $tU, $td or $tn rewrites the first From/To header of the message sent
// on, as Kamailio's pv_set_from_attr/pv_set_to_attr do with lumps: the URI, its user or host, or the
// display name (written as given) is replaced; the rest of the header (tag, parameters) stays. Getters keep
// seeing the header as received, as in Kamailio.

var errNoHeader = errors.New("header missing or not a name-addr")

// addrSpan locates the display name and the URI of the first hname header in m.Buf.
func addrSpan(m *engine.Msg, hname string) (h rawsip.Hdr, dispEnd, uriStart, uriEnd int, bracketed bool, err error) {
	i := m.Raw.Find(m.Buf, hname)
	if i < 0 {
		return h, 0, 0, 0, false, errNoHeader
	}
	h = m.Raw.Hdrs[i]
	v := string(m.Buf[h.VStart:h.VEnd])
	_, uri, _, ok := rawsip.NameAddr(v)
	if !ok || uri == "" {
		return h, 0, 0, 0, false, errNoHeader
	}
	from := 0
	if lt := strings.IndexByte(v, '<'); lt >= 0 && strings.LastIndexByte(v[:lt], '"') < lt {
		from, bracketed = lt+1, true
		dispEnd = lt
	}
	j := strings.Index(v[from:], uri)
	if j < 0 {
		return h, 0, 0, 0, false, errNoHeader
	}
	uriStart = int(h.VStart) + from + j
	return h, int(h.VStart) + dispEnd, uriStart, uriStart + len(uri), bracketed, nil
}

func setAddrURI(hname string) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, _ string, v engine.Value) error {
		if v.Kind != engine.Str || !validText(v.S) {
			return errNeedStr
		}
		if _, ok := rawsip.ParseURI(v.S); !ok {
			return errors.New("invalid URI")
		}
		_, _, s, e, _, err := addrSpan(m, hname)
		if err != nil {
			return err
		}
		m.AddEdit(s, e, v.S)
		return nil
	}
}

func setAddrURIPart(hname string, apply func(u *rawsip.URI, v engine.Value) error) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, _ string, v engine.Value) error {
		_, _, s, e, _, err := addrSpan(m, hname)
		if err != nil {
			return err
		}
		u, ok := rawsip.ParseURI(string(m.Buf[s:e]))
		if !ok {
			return errors.New("the " + hname + " URI does not parse")
		}
		if err := apply(&u, v); err != nil {
			return err
		}
		m.AddEdit(s, e, u.String())
		return nil
	}
}

func setAddrDisplay(hname string) func(*engine.Msg, string, engine.Value) error {
	return func(m *engine.Msg, _ string, v engine.Value) error {
		if v.Kind == engine.Null {
			return errNull
		}
		d := v.String()
		if strings.ContainsAny(d, "\r\n<") {
			return errors.New("invalid display name")
		}
		h, dispEnd, s, e, bracketed, err := addrSpan(m, hname)
		if err != nil {
			return err
		}
		if bracketed {
			m.AddEdit(int(h.VStart), dispEnd, d+" ")
			return nil
		}
		m.AddEdit(s, e, d+" <"+string(m.Buf[s:e])+">")
		return nil
	}
}
