package textopsx

import (
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// Header value lists: a header's body is a comma-separated list of values (RFC 3261 §7.3.1), numbered from
// 1 across all headers of the name, negative from the end. The header spec is "Name" or "Name[idx]"
// ("[*]" = all), optionally followed by ".param" (a ;parameter of the value) for remove_hf_value and
// assign_hf_value; the *2 forms' ".param" (Authorization-style name=value lists) is not supported (-1).

type op int

const (
	opAppend op = iota
	opInsert
	opRemove
	opAssign
	opRemove2
	opAssign2
	opInclude
	opExclude
	opExists
)

type hfSpec struct {
	name   string
	param  string
	idx    int // 0 = none
	hasIdx bool
	all    bool
}

func parseSpec(s string) (hfSpec, bool) {
	s = strings.TrimSpace(s)
	var sp hfSpec
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		sp.param = s[i+1:]
		s = s[:i]
		if sp.param == "" || strings.ContainsAny(sp.param, "[]; \t=") {
			return sp, false
		}
	}
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") {
			return sp, false
		}
		in := s[i+1 : len(s)-1]
		s = s[:i]
		if in == "*" {
			sp.all = true
		} else {
			n, err := strconv.Atoi(in)
			if err != nil || n == 0 {
				return sp, false
			}
			sp.idx, sp.hasIdx = n, true
		}
	}
	if s == "" || strings.ContainsAny(s, ".: \t") {
		return sp, false
	}
	sp.name = s
	return sp, true
}

// value is one comma-separated value: its span in the buffer, the header it is in, and the separator
// span to remove with it.
type value struct {
	hdr        int // index in m.Raw.Hdrs
	start, end int // the value, trimmed
	text       string
}

// values lists the values of every header named name, in order.
func values(m *engine.Msg, name string) []value {
	lname := engine.HeaderName(name)
	var out []value
	for i, h := range m.Raw.Hdrs {
		if !h.Is(m.Buf, lname) {
			continue
		}
		v := m.Buf[h.VStart:h.VEnd]
		start, quoted, depth := 0, false, 0
		emit := func(s, e int) {
			for s < e && (v[s] == ' ' || v[s] == '\t') {
				s++
			}
			for e > s && (v[e-1] == ' ' || v[e-1] == '\t') {
				e--
			}
			if e > s {
				out = append(out, value{hdr: i, start: int(h.VStart) + s, end: int(h.VStart) + e, text: string(v[s:e])})
			}
		}
		for k := 0; k < len(v); k++ {
			switch c := v[k]; {
			case c == '"' && (k == 0 || v[k-1] != '\\'):
				quoted = !quoted
			case quoted:
			case c == '<':
				depth++
			case c == '>':
				depth--
			case c == ',' && depth <= 0:
				emit(start, k)
				start = k + 1
			}
		}
		emit(start, len(v))
	}
	return out
}

// pick returns the idx-th value (1-based, negative from the end).
func pick(vs []value, idx int) (int, bool) {
	i := idx - 1
	if idx < 0 {
		i = len(vs) + idx
	}
	return i, i >= 0 && i < len(vs)
}

func addHeader(m *engine.Msg, off int, name, val string) int {
	m.AddEdit(off, off, name+": "+val+"\r\n")
	return 1
}

// removeValue removes one value with one adjacent comma, or its whole header when it is the only value.
func removeValue(m *engine.Msg, vs []value, i int) {
	v := vs[i]
	var prev, next *value
	if i > 0 && vs[i-1].hdr == v.hdr {
		prev = &vs[i-1]
	}
	if i+1 < len(vs) && vs[i+1].hdr == v.hdr {
		next = &vs[i+1]
	}
	switch {
	case prev == nil && next == nil:
		h := m.Raw.Hdrs[v.hdr]
		m.AddEdit(int(h.Start), int(h.End), "")
	case next != nil: // the value and its comma; the white space before the next value stays
		c := v.end
		for c < next.start && m.Buf[c] != ',' {
			c++
		}
		m.AddEdit(v.start, c+1, "")
	default:
		m.AddEdit(prev.end, v.end, "")
	}
}

func modifyHF(m *engine.Msg, spec, val string, o op) int {
	sp, ok := parseSpec(spec)
	if !ok {
		return -1
	}
	vs := values(m, sp.name)
	lname := engine.HeaderName(sp.name)
	// Kamailio's fixups: append and insert take no [*] and no parameter, assign no [*] without a parameter,
	// the *2 forms' parameters are not supported here
	switch {
	case (o == opAppend || o == opInsert) && (sp.all || sp.param != ""),
		o == opAssign && sp.all && sp.param == "",
		(o == opRemove2 || o == opAssign2) && sp.param != "":
		return -1
	}
	if sp.param != "" { // an empty value assigns nothing: Kamailio's KEMI passes no value, which removes
		return modifyParam(m, sp, vs, val, o == opRemove || val == "")
	}
	switch o {
	case opAppend:
		if !sp.hasIdx {
			return addHeader(m, m.Raw.HdrsEnd, sp.name, val)
		}
		if i, ok := pick(vs, sp.idx); ok {
			// Kamailio adds "val," after the value and its comma, or ",val" after the header's last value
			if i+1 < len(vs) && vs[i+1].hdr == vs[i].hdr {
				c := commaAfter(m, vs[i])
				m.AddEdit(c, c, val+",")
			} else {
				m.AddEdit(vs[i].end, vs[i].end, ","+val)
			}
			return 1
		}
		return addHeader(m, m.Raw.HdrsEnd, sp.name, val)
	case opInsert:
		if !sp.hasIdx {
			if j := m.Raw.Find(m.Buf, lname); j >= 0 {
				return addHeader(m, int(m.Raw.Hdrs[j].Start), sp.name, val)
			}
			return addHeader(m, m.Raw.HdrsEnd, sp.name, val)
		}
		if i, ok := pick(vs, sp.idx); ok { // "val," after the previous value's comma, or before the value
			if i > 0 && vs[i-1].hdr == vs[i].hdr {
				c := commaAfter(m, vs[i-1])
				m.AddEdit(c, c, val+",")
			} else {
				m.AddEdit(vs[i].start, vs[i].start, val+",")
			}
			return 1
		}
		if sp.idx == 1 {
			return addHeader(m, m.Raw.HdrsEnd, sp.name, val)
		}
		return -1
	case opRemove, opRemove2, opAssign, opAssign2:
		remove := o == opRemove || o == opRemove2
		if !sp.hasIdx && !sp.all {
			sp.idx, sp.hasIdx = 1, true // no index: the first value (the first header for the *2 forms)
		}
		if !sp.hasIdx || o == opRemove2 || o == opAssign2 {
			hit := -1
			for j, h := range m.Raw.Hdrs {
				if !h.Is(m.Buf, lname) {
					continue
				}
				if sp.hasIdx { // the *2 forms take [idx] as the header's index
					if n := headerIndex(m, lname, sp.idx); n != j {
						continue
					}
				}
				hit = 1
				if remove {
					m.AddEdit(int(h.Start), int(h.End), "")
				} else {
					m.AddEdit(int(h.VStart), int(h.VEnd), val)
				}
			}
			return hit
		}
		i, ok := pick(vs, sp.idx)
		if !ok {
			return -1
		}
		if remove {
			removeValue(m, vs, i)
		} else {
			m.AddEdit(vs[i].start, vs[i].end, val)
		}
		return 1
	}
	return -1
}

// headerIndex returns the index in m.Raw.Hdrs of the idx-th header named lname (1-based, negative from
// the end), -1 when none.
func headerIndex(m *engine.Msg, lname string, idx int) int {
	var hs []int
	for j, h := range m.Raw.Hdrs {
		if h.Is(m.Buf, lname) {
			hs = append(hs, j)
		}
	}
	i := idx - 1
	if idx < 0 {
		i = len(hs) + idx
	}
	if i < 0 || i >= len(hs) {
		return -1
	}
	return hs[i]
}

// incExc: include_hf_value adds val to the last header's list (or a new header) unless present,
// exclude_hf_value removes it, hf_value_exists tests it (values compared case-insensitively).
func incExc(m *engine.Msg, spec, val string, o op) int {
	sp, ok := parseSpec(spec)
	if !ok || sp.hasIdx || sp.param != "" || val == "" {
		return -1
	}
	vs := values(m, sp.name)
	found := -1
	for i, v := range vs {
		if strings.EqualFold(v.text, val) {
			found = i
			break
		}
	}
	switch o {
	case opExists:
		return ret(found >= 0)
	case opInclude:
		if found >= 0 {
			return 1
		}
		if len(vs) > 0 { // ",val" after the last value of the first header, as Kamailio's
			last := vs[0]
			for _, v := range vs[1:] {
				if v.hdr == vs[0].hdr {
					last = v
				}
			}
			m.AddEdit(last.end, last.end, ","+val)
			return 1
		}
		if j := m.Raw.Find(m.Buf, engine.HeaderName(sp.name)); j >= 0 { // an empty header
			h := m.Raw.Hdrs[j]
			m.AddEdit(int(h.VEnd), int(h.VEnd), val)
			return 1
		}
		return addHeader(m, m.Raw.HdrsEnd, sp.name, val)
	case opExclude:
		if found < 0 {
			return 1 // Kamailio: 1 also when the value is not there
		}
		for i := len(vs) - 1; i >= 0; i-- {
			if strings.EqualFold(vs[i].text, val) {
				removeValue(m, vs, i)
			}
		}
		return 1
	}
	return -1
}

// commaAfter returns the position just after the comma that follows v.
func commaAfter(m *engine.Msg, v value) int {
	c := v.end
	for c < len(m.Buf) && m.Buf[c] != ',' {
		c++
	}
	return c + 1
}

// modifyParam is assign_hf_value / remove_hf_value on "Name[idx].param": the ;param of the selected value
// (after its URI), or of every value with [*]. Assign replaces its value (adds ";param=val" when absent);
// remove (and assign of "") deletes it with its ';' and the white space before it, -1 when absent.
func modifyParam(m *engine.Msg, sp hfSpec, vs []value, val string, remove bool) int {
	var sel []value
	if sp.all {
		sel = vs
	} else {
		idx := sp.idx
		if !sp.hasIdx {
			idx = 1
		}
		i, ok := pick(vs, idx)
		if !ok {
			return -1
		}
		sel = vs[i : i+1]
	}
	res := -1
	for _, v := range sel {
		area := v.start
		if gt := strings.IndexByte(v.text, '>'); gt >= 0 {
			area += gt + 1
			for area < v.end && (m.Buf[area] == ' ' || m.Buf[area] == '\t') {
				area++
			}
		} else if sc := strings.IndexByte(v.text, ';'); sc >= 0 {
			area += sc
		} else {
			area = v.end
		}
		delStart, updStart, end, found := findParam(m.Buf[:v.end], area, sp.param)
		switch {
		case found && remove:
			m.AddEdit(delStart, end, "")
			res = 1
		case found:
			text := ""
			if val != "" {
				text = "=" + val
			}
			m.AddEdit(updStart, end, text)
			res = 1
		case !remove:
			text := ";" + sp.param
			if val != "" {
				text += "=" + val
			}
			m.AddEdit(delStart, delStart, text)
			res = 1
		}
	}
	return res
}

// findParam scans ";name[=value]" parameters in buf from pos (Kamailio's find_hf_value_param): for the
// parameter called name it returns where its deletion starts (the white space before ';'), where its
// "=value" starts and where it ends; when absent, delStart is the end of the last parameter.
func findParam(buf []byte, pos int, name string) (delStart, updStart, end int, found bool) {
	i := pos
	for {
		delStart = i
		for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
			i++
		}
		if i >= len(buf) || buf[i] != ';' {
			return delStart, 0, 0, false
		}
		i++
		for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
			i++
		}
		j := i
		for i < len(buf) && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '=' && buf[i] != ';' {
			i++
		}
		hit := strings.EqualFold(string(buf[j:i]), name)
		updStart = i
		for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
			i++
		}
		if i < len(buf) && buf[i] == '=' {
			i++
			for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
				i++
			}
			if i < len(buf) && buf[i] == '"' {
				i++
				for i < len(buf) && buf[i] != '"' {
					i++
				}
				if i < len(buf) {
					i++
				}
			} else {
				for i < len(buf) && buf[i] != ' ' && buf[i] != '\t' && buf[i] != ';' {
					i++
				}
			}
		}
		if hit {
			return delStart, updStart, i, true
		}
	}
}
