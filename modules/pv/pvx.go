package pv

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
)

// KSR.pvx: Kamailio's pv module functions over xavp/xavu/xavi, avp, var, shv and the static branch.
func init() {
	engine.Register(engine.Module{Name: "pvx", Builtin: true, New: func() engine.Instance { return &PVX{} }})
}

// PVX is the pvx namespace.
type PVX struct{ log *slog.Logger }

// Start keeps the module logger.
func (x *PVX) Start(env *engine.Env) error { x.log = env.Log; return nil }

// xvalMode is how a KEMI getter returns a missing value: nil (get), "" (gete) or "<null>" (getw).
type xvalMode uint8

const (
	modeNull xvalMode = iota
	modeEmpty
	modeW
)

func xval(v engine.Value, mode xvalMode) engine.Value {
	if v.Kind != engine.Null {
		return v
	}
	switch mode {
	case modeEmpty:
		return engine.StrVal("")
	case modeW:
		return engine.StrVal("<null>")
	}
	return v
}

func b2i(ok bool) int {
	if ok {
		return 1
	}
	return -1
}

// Exports: every function of Kamailio 5.6's pvx namespace.
func (x *PVX) Exports() []engine.Export {
	ex := []engine.Export{
		{Name: "avp_get", Fn: func(m *engine.Msg, n string) engine.Value { return getAVP(m, n) }},
		{Name: "avp_gete", Fn: func(m *engine.Msg, n string) engine.Value { return xval(getAVP(m, n), modeEmpty) }},
		{Name: "avp_getw", Fn: func(m *engine.Msg, n string) engine.Value { return xval(getAVP(m, n), modeW) }},
		{Name: "avp_is_null", Fn: func(m *engine.Msg, n string) int { return b2i(getAVP(m, n).Kind == engine.Null) }},
		{Name: "avp_rm", Fn: func(m *engine.Msg, n string) int {
			if n == "" {
				return -1
			}
			delete(m.AVPs, n)
			return 1
		}},
		{Name: "avp_seti", Fn: func(m *engine.Msg, n string, v int) int {
			return b2i(setAVP(m, n, engine.IntVal(int64(v))) == nil)
		}},
		{Name: "avp_sets", Fn: func(m *engine.Msg, n, v string) int { return b2i(setAVP(m, n, engine.StrVal(v)) == nil) }},
		{Name: "var_get", Fn: func(m *engine.Msg, n string) engine.Value { return getVar(m, n) }},
		{Name: "var_seti", Fn: func(m *engine.Msg, n string, v int) int {
			return b2i(setVar(m, n, engine.IntVal(int64(v))) == nil)
		}},
		{Name: "var_sets", Fn: func(m *engine.Msg, n, v string) int { return b2i(setVar(m, n, engine.StrVal(v)) == nil) }},
		{Name: "shv_get", Fn: func(m *engine.Msg, n string) engine.Value {
			if p := pvOf(m); p != nil {
				return p.getShv(m, n)
			}
			return engine.Value{}
		}},
		{Name: "shv_seti", Fn: func(m *engine.Msg, n string, v int) int { return x.setShv(m, n, engine.IntVal(int64(v))) }},
		{Name: "shv_sets", Fn: func(m *engine.Msg, n, v string) int { return x.setShv(m, n, engine.StrVal(v)) }},
		{Name: "evalx", Fn: x.evalx},
		{Name: "pv_var_to_xavp", Fn: varToXavp},
		{Name: "pv_xavp_to_var", Fn: xavpToVar},
		{Name: "pv_xavp_print", Fn: func(m *engine.Msg) int { return x.print(m, kindXavp) }},
		{Name: "pv_xavu_print", Fn: func(m *engine.Msg) int { return x.print(m, kindXavu) }},
		{Name: "pv_xavi_print", Fn: func(m *engine.Msg) int { return x.print(m, kindXavi) }},
		{Name: "sbranch_set_ruri", Fn: sbranchSetRURI},
		{Name: "sbranch_append", Fn: sbranchAppend},
		{Name: "sbranch_reset", Fn: func(m *engine.Msg) int { m.DelModState(sbranchKey); return 1 }},
		{Name: "xavp_params_explode", Fn: func(m *engine.Msg, params, name string) int { return explode(m, kindXavp, params, name) }},
		{Name: "xavu_params_explode", Fn: func(m *engine.Msg, params, name string) int { return explode(m, kindXavu, params, name) }},
		{Name: "xavp_params_implode", Fn: func(m *engine.Msg, name, dst string) int { return x.implode(m, kindXavp, name, dst) }},
		{Name: "xavu_params_implode", Fn: func(m *engine.Msg, name, dst string) int { return x.implode(m, kindXavu, name, dst) }},
		{Name: "xavp_copy", Fn: xavpCopy},
		// Kamailio's KEMI xavp_copy_dst ignores dst_idx (it calls the append mode), and so does siplua
		{Name: "xavp_copy_dst", Fn: func(m *engine.Msg, src string, idx int, dst string, _ int) int { return xavpCopy(m, src, idx, dst) }},
		{Name: "xavp_slist_explode", Fn: slistExplode},
	}
	for _, k := range []struct {
		prefix string
		kind   xavKind
	}{{"xavp", kindXavp}, {"xavu", kindXavu}, {"xavi", kindXavi}} {
		ex = append(ex, xavExports(k.prefix, k.kind)...)
		if k.kind != kindXavu {
			ex = append(ex, xavDicts(k.prefix, k.kind)...)
		}
	}
	return ex
}

func xavExports(prefix string, k xavKind) []engine.Export {
	get := func(mode xvalMode) func(*engine.Msg, string) engine.Value {
		return func(m *engine.Msg, n string) engine.Value {
			it := rootList(m, k, false).at(n, 0)
			if it == nil {
				return xval(engine.Value{}, mode)
			}
			return xval(it.value(), mode)
		}
	}
	childGet := func(mode xvalMode) func(*engine.Msg, string, string) engine.Value {
		return func(m *engine.Msg, r, c string) engine.Value { return xval(childValue(m, k, r, c), mode) }
	}
	set := func(m *engine.Msg, n string, v engine.Value) int {
		if n == "" {
			return -1
		}
		l := rootList(m, k, true)
		if k == kindXavu {
			l.setUnique(xitem{name: n, v: v})
		} else {
			l.add(xitem{name: n, v: v})
		}
		return 1
	}
	childSet := func(m *engine.Msg, r, c string, v engine.Value) int {
		if r == "" || c == "" {
			return -1
		}
		l := rootList(m, k, true)
		it := l.at(r, 0)
		if it == nil || it.sub == nil {
			sub := &xlist{fold: l.fold}
			sub.add(xitem{name: c, v: v})
			if k == kindXavu {
				l.setUnique(xitem{name: r, sub: sub})
			} else {
				l.add(xitem{name: r, sub: sub})
			}
			return 1
		}
		if k == kindXavu {
			it.sub.setUnique(xitem{name: c, v: v})
		} else {
			it.sub.add(xitem{name: c, v: v})
		}
		return 1
	}
	return []engine.Export{
		{Name: prefix + "_get", Fn: get(modeNull)},
		{Name: prefix + "_gete", Fn: get(modeEmpty)},
		{Name: prefix + "_getw", Fn: get(modeW)},
		{Name: prefix + "_is_null", Fn: func(m *engine.Msg, n string) int {
			it := rootList(m, k, false).at(n, 0)
			return b2i(it == nil || it.sub == nil && it.v.Kind == engine.Null)
		}},
		{Name: prefix + "_rm", Fn: func(m *engine.Msg, n string) int {
			if k == kindXavu {
				rootList(m, k, false).rm(n, 0, true)
			} else {
				rootList(m, k, false).rm(n, 0, false)
			}
			return 1
		}},
		{Name: prefix + "_seti", Fn: func(m *engine.Msg, n string, v int) int { return set(m, n, engine.IntVal(int64(v))) }},
		{Name: prefix + "_sets", Fn: func(m *engine.Msg, n, v string) int { return set(m, n, engine.StrVal(v)) }},
		{Name: prefix + "_child_get", Fn: childGet(modeNull)},
		{Name: prefix + "_child_gete", Fn: childGet(modeEmpty)},
		{Name: prefix + "_child_getw", Fn: childGet(modeW)},
		{Name: prefix + "_child_is_null", Fn: func(m *engine.Msg, r, c string) int {
			return b2i(childValue(m, k, r, c).Kind == engine.Null)
		}},
		{Name: prefix + "_child_rm", Fn: func(m *engine.Msg, r, c string) int {
			if it := rootList(m, k, false).at(r, 0); it != nil && it.sub != nil {
				it.sub.rm(c, 0, false)
			}
			return 1
		}},
		{Name: prefix + "_child_seti", Fn: func(m *engine.Msg, r, c string, v int) int {
			return childSet(m, r, c, engine.IntVal(int64(v)))
		}},
		{Name: prefix + "_child_sets", Fn: func(m *engine.Msg, r, c, v string) int { return childSet(m, r, c, engine.StrVal(v)) }},
	}
}

func childValue(m *engine.Msg, k xavKind, r, c string) engine.Value {
	it := rootList(m, k, false).at(r, 0)
	if it == nil || it.sub == nil {
		return engine.Value{}
	}
	if ch := it.sub.at(c, 0); ch != nil {
		return ch.value()
	}
	return engine.Value{}
}

func (x *PVX) logger() *slog.Logger {
	if x.log == nil {
		return slog.Default().With("module", "pvx")
	}
	return x.log
}

func (x *PVX) setShv(m *engine.Msg, n string, v engine.Value) int {
	p := pvOf(m)
	if p == nil {
		return -1
	}
	return b2i(p.setShv(m, n, v) == nil)
}

// evalx is pvx.evalx(dst, fmt): the format evaluated into the variable dst (a string).
func (x *PVX) evalx(m *engine.Msg, dst, f string) int {
	p := pvOf(m)
	if p == nil {
		return -1
	}
	return b2i(p.set(m, dst, engine.StrVal(p.Render(m, f))))
}

// explode is xavp_params_explode("a=1;b=2", "x"): a new root x with the parameters as children (string
// values, in the order written).
func explode(m *engine.Msg, k xavKind, params, name string) int {
	params = strings.TrimSuffix(params, ";")
	if params == "" || name == "" {
		return -1
	}
	l := rootList(m, k, true)
	sub := &xlist{fold: l.fold}
	fields := strings.Split(params, ";")
	for i := len(fields) - 1; i >= 0; i-- {
		kname, val, _ := strings.Cut(fields[i], "=")
		kname = strings.TrimSpace(kname)
		if kname == "" {
			return -1
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if k == kindXavu {
			sub.setUnique(xitem{name: kname, v: engine.StrVal(val)})
		} else {
			sub.add(xitem{name: kname, v: engine.StrVal(val)})
		}
	}
	if k == kindXavu {
		l.setUnique(xitem{name: name, sub: sub})
	} else {
		l.add(xitem{name: name, sub: sub})
	}
	return 1
}

// implode serializes the children of name[0] as "a=1;b=2;" (a flag-like empty value as "a;") into the
// variable dst.
func (x *PVX) implode(m *engine.Msg, k xavKind, name, dst string) int {
	p := pvOf(m)
	it := rootList(m, k, false).at(name, 0)
	if p == nil || it == nil || it.sub == nil || dst == "" {
		return -1
	}
	var b strings.Builder
	for _, c := range it.sub.items {
		switch c.v.Kind {
		case engine.Int:
			b.WriteString(c.name + "=" + strconv.FormatUint(uint64(uint32(c.v.I)), 10) + ";")
		case engine.Str:
			if c.v.S == "" {
				b.WriteString(c.name + ";")
			} else {
				b.WriteString(c.name + "=" + c.v.S + ";")
			}
		}
	}
	if b.Len() == 0 {
		return -1
	}
	return b2i(p.set(m, dst, engine.StrVal(b.String())))
}

// varToXavp is pv_var_to_xavp(var, xname): $var(var) (or every $var with "*") as children of a new root.
func varToXavp(m *engine.Msg, name, xname string) int {
	if name == "" || xname == "" {
		return -1
	}
	l := rootList(m, kindXavp, true)
	sub := &xlist{}
	if name == "*" {
		for k, v := range m.Vars {
			sub.add(xitem{name: k, v: v})
		}
	} else {
		sub.add(xitem{name: name, v: getVar(m, name)})
	}
	l.add(xitem{name: xname, sub: sub})
	return 1
}

// xavpToVar is pv_xavp_to_var(xname): each child of xname[0] becomes $var(child).
func xavpToVar(m *engine.Msg, xname string) int {
	it := rootList(m, kindXavp, false).at(xname, 0)
	if it == nil || it.sub == nil {
		return -1
	}
	for i := len(it.sub.items) - 1; i >= 0; i-- {
		c := it.sub.items[i]
		if c.sub == nil {
			_ = setVar(m, c.name, c.v)
		}
	}
	return 1
}

func xavpCopy(m *engine.Msg, src string, idx int, dst string) int {
	l := rootList(m, kindXavp, false)
	it := l.at(src, idx)
	if it == nil || dst == "" {
		return -1
	}
	c := *it
	c.name = dst
	if it.sub != nil {
		sub := &xlist{fold: it.sub.fold, items: append([]xitem(nil), it.sub.items...)}
		c.sub = sub
	}
	dl := rootList(m, kindXavp, true)
	if dl.at(dst, 0) != nil {
		dl.items = append(dl.items, c) // an existing dst gets the copy last, as Kamailio's xavp_add_last
		return 1
	}
	dl.add(c)
	return 1
}

// slistExplode is xavp_slist_explode("a,b", ",", mode, name): a new root name with one child "v" per
// non-empty token (first token first); mode "t" trims the tokens.
func slistExplode(m *engine.Msg, list, seps, mode, name string) int {
	if list == "" || seps == "" || name == "" {
		return -1
	}
	sub := &xlist{}
	start := 0
	emit := func(tok string) {
		if tok != "" && strings.HasPrefix(mode, "t") {
			tok = strings.Trim(tok, " \t\r\n")
		}
		if tok != "" {
			sub.items = append(sub.items, xitem{name: "v", v: engine.StrVal(tok)})
		}
	}
	for i := 0; i < len(list); i++ {
		if strings.IndexByte(seps, list[i]) >= 0 {
			emit(list[start:i])
			start = i + 1
		}
	}
	emit(list[start:])
	rootList(m, kindXavp, true).add(xitem{name: name, sub: sub})
	return 1
}

func (x *PVX) print(m *engine.Msg, k xavKind) int {
	l := rootList(m, k, false)
	if l == nil {
		return 1
	}
	for _, it := range l.items {
		if it.sub == nil {
			x.logger().Info("xavp", "name", it.name, "value", it.v.String())
			continue
		}
		for _, c := range it.sub.items {
			x.logger().Info("xavp", "name", it.name, "child", c.name, "value", c.value().String())
		}
	}
	return 1
}

// The static branch ($sbranch(attr), sbranch_*): a branch prepared field by field, then used as the
// Request-URI branch or appended.
const sbranchKey = "pv.sbranch"

func sbranch(m *engine.Msg, create bool) *engine.Branch {
	if b, ok := m.ModState(sbranchKey).(*engine.Branch); ok {
		return b
	}
	if !create {
		return nil
	}
	b := &engine.Branch{} // q 0, as Kamailio's zeroed static branch
	m.SetModState(sbranchKey, b)
	return b
}

func getSbranch(m *engine.Msg, attr string) engine.Value {
	b := sbranch(m, false)
	if b == nil {
		return engine.Value{}
	}
	switch attr {
	case "uri":
		return strOrNull(b.URI)
	case "dst_uri":
		return strOrNull(b.DstURI)
	case "path":
		return strOrNull(b.Path)
	case "q":
		return engine.IntVal(int64(b.Q))
	case "branch_flags":
		return engine.IntVal(int64(b.Flags))
	}
	return engine.Value{}
}

func setSbranch(m *engine.Msg, attr string, v engine.Value) error {
	b := sbranch(m, true)
	switch attr {
	case "uri":
		b.URI = v.String()
	case "dst_uri":
		b.DstURI = v.String()
	case "path":
		b.Path = v.String()
	case "q":
		n, err := strconv.Atoi(v.String())
		if err != nil {
			return err
		}
		b.Q = n
	case "branch_flags":
		n, err := strconv.ParseUint(v.String(), 10, 32)
		if err != nil {
			return err
		}
		b.Flags = n
	default:
		return errXName
	}
	if v.Kind == engine.Null {
		switch attr {
		case "uri":
			b.URI = ""
		case "dst_uri":
			b.DstURI = ""
		case "path":
			b.Path = ""
		}
	}
	return nil
}

func sbranchSetRURI(m *engine.Msg) int {
	b := sbranch(m, false)
	if b == nil || b.URI == "" || !m.IsRequest() {
		return -1
	}
	m.NewURI = b.URI
	m.DstURI = b.DstURI
	m.Path = b.Path
	if b.Q >= 0 {
		m.SetRURIQ(b.Q)
	}
	m.BFlags = b.Flags
	return 1
}

func sbranchAppend(m *engine.Msg) int {
	b := sbranch(m, false)
	if b == nil || b.URI == "" || !m.IsRequest() {
		return -1
	}
	m.Branches = append(m.Branches, *b)
	return 1
}

// xavDicts are the table getters: xavp_getd(name) is an array with one table per value of name (newest
// first) that holds a list, each mapping a child name to the array of its values; xavp_getd_p1(name, i)
// is the table of name[i]; xavp_get_keys(name, i) the array of child names of name[i], first seen first.
func xavDicts(prefix string, k xavKind) []engine.Export {
	return []engine.Export{
		{Name: prefix + "_getd", Fn: func(m *engine.Msg, n string) any {
			l := rootList(m, k, false)
			pos := l.positions(n)
			if len(pos) == 0 {
				return nil
			}
			out := []any{}
			for _, i := range pos {
				if d := xavDict(&l.items[i]); d != nil {
					out = append(out, d)
				}
			}
			return out
		}},
		{Name: prefix + "_getd_p1", Fn: func(m *engine.Msg, n string, idx int) any {
			it := rootList(m, k, false).at(n, idx)
			if it == nil {
				return nil
			}
			if d := xavDict(it); d != nil {
				return d
			}
			return map[string]any{}
		}},
		{Name: prefix + "_get_keys", Fn: func(m *engine.Msg, n string, idx int) any {
			if idx < 0 {
				return nil
			}
			it := rootList(m, k, false).at(n, idx)
			if it == nil {
				return nil
			}
			out := []any{}
			if it.sub == nil {
				return out
			}
			for _, name := range xavKeys(it.sub) {
				out = append(out, engine.StrVal(name))
			}
			return out
		}},
	}
}

// xavKeys lists the distinct child names, first seen first.
func xavKeys(l *xlist) []string {
	var names []string
	for _, c := range l.items {
		dup := false
		for _, n := range names {
			if l.eq(n, c.name) {
				dup = true
				break
			}
		}
		if !dup {
			names = append(names, c.name)
		}
	}
	return names
}

// xavDict maps each child name of it to the array of its values (a nested list as a table); nil when
// it holds no list.
func xavDict(it *xitem) map[string]any {
	if it.sub == nil {
		return nil
	}
	d := map[string]any{}
	for _, name := range xavKeys(it.sub) {
		vals := []any{}
		for _, i := range it.sub.positions(name) {
			c := &it.sub.items[i]
			if c.sub != nil {
				vals = append(vals, xavDict(c))
				continue
			}
			vals = append(vals, c.v)
		}
		d[name] = vals
	}
	return d
}
