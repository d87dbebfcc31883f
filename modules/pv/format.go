package pv

import (
	"strings"

	"github.com/siplua/siplua/engine"
)

// Format is a compiled format string ("call $ci from $(fu{uri.user})"): literal text and specs in order,
// as Kamailio's pv_parse_format builds for xlog and evalx.
type Format struct {
	parts []fmtPart
	size  int // literal bytes, to size the output
}

type fmtPart struct {
	text string
	spec *Spec
}

// CompileFormat parses s. A '$' that does not start a valid spec is an error, as Kamailio refuses such a
// format when it loads the configuration.
func CompileFormat(s string) (*Format, error) {
	f := &Format{}
	for len(s) > 0 {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			f.parts = append(f.parts, fmtPart{text: s})
			f.size += len(s)
			break
		}
		if i > 0 {
			f.parts = append(f.parts, fmtPart{text: s[:i]})
			f.size += i
		}
		sp, n, err := parseSpecAt(s[i:], 0)
		if err != nil {
			return nil, err
		}
		f.parts = append(f.parts, fmtPart{spec: sp})
		s = s[i+n:]
	}
	return f, nil
}

// Specs returns the variables the format uses (for siplua -c).
func (f *Format) Specs() []*Spec {
	var out []*Spec
	for _, p := range f.parts {
		if p.spec != nil {
			out = append(out, p.spec)
		}
	}
	return out
}

// format returns the compiled format, cached; an invalid one is logged once and printed as written.
func (p *PV) format(s string) *Format {
	if v, ok := p.cache.formats.Load(s); ok {
		return v.(*Format)
	}
	f, err := CompileFormat(s)
	if err != nil {
		if p.cache.once("format:" + s) {
			p.logger().Error("invalid format string, printed as written (reported once)", "format", s, "err", err)
		}
		f = &Format{parts: []fmtPart{{text: s}}, size: len(s)}
	}
	p.cache.store(&p.cache.formats, s, f)
	return f
}

// Render evaluates a format string for m; a null variable prints as "<null>", as in xlog.
func (p *PV) Render(m *engine.Msg, s string) string {
	f := p.format(s)
	if len(f.parts) == 1 && f.parts[0].spec == nil {
		return f.parts[0].text
	}
	var b strings.Builder
	b.Grow(f.size + 16*len(f.parts))
	for _, part := range f.parts {
		if part.spec == nil {
			b.WriteString(part.text)
			continue
		}
		v := p.eval(m, part.spec)
		switch v.Kind {
		case engine.Str:
			b.WriteString(v.S)
		default:
			b.WriteString(v.String())
		}
	}
	return b.String()
}
