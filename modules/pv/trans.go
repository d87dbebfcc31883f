package pv

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

// Trans is one compiled transformation ("{s.substr,1,2}"): its function and parameters. Parameters are
// literals or pseudo-variables evaluated at each use, as in Kamailio.
type Trans struct {
	Name string // "s.substr"
	fn   transFn
	args []trArg
}

// trArg is a transformation parameter: a literal (string, and its integer value when it is one) or a
// pseudo-variable.
type trArg struct {
	s     string
	n     int
	isNum bool
	pv    *Spec
}

// transFn applies a transformation; ok=false is Kamailio's -1 (the whole spec reads as null).
type transFn func(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool)

type transDef struct {
	fn            transFn
	min, max      int  // number of parameters
	rawLastParams bool // the last parameter keeps its commas (s.select's separator may be ',')
}

// transforms lists the transformations siplua implements, with Kamailio's names and arity.
var transforms map[string]transDef

func init() {
	transforms = map[string]transDef{
		"s.len":           {fn: trLen},
		"s.int":           {fn: trInt},
		"s.tolower":       {fn: trCase(strings.ToLower)},
		"s.toupper":       {fn: trCase(strings.ToUpper)},
		"s.substr":        {fn: trSubstr, min: 2, max: 2},
		"s.select":        {fn: trSelect, min: 2, max: 2, rawLastParams: true},
		"s.strip":         {fn: trStrip(true), min: 1, max: 1},
		"s.striptail":     {fn: trStrip(false), min: 1, max: 1},
		"s.stripto":       {fn: trStripTo, min: 1, max: 1},
		"s.trim":          {fn: trStr(func(s string) string { return strings.Trim(s, " \t\r\n") })},
		"s.rtrim":         {fn: trStr(func(s string) string { return strings.TrimRight(s, " \t\r\n") })},
		"s.ltrim":         {fn: trStr(func(s string) string { return strings.TrimLeft(s, " \t\r\n") })},
		"s.rmws":          {fn: trStr(func(s string) string { return strings.Map(dropWS, s) })},
		"s.md5":           {fn: trStr(func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) })},
		"s.sha256":        {fn: trStr(func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) })},
		"s.sha384":        {fn: trStr(func(s string) string { h := sha512.Sum384([]byte(s)); return hex.EncodeToString(h[:]) })},
		"s.sha512":        {fn: trStr(func(s string) string { h := sha512.Sum512([]byte(s)); return hex.EncodeToString(h[:]) })},
		"s.encode.hexa":   {fn: trStr(func(s string) string { return hex.EncodeToString([]byte(s)) })},
		"s.decode.hexa":   {fn: trStrErr(decodeHexa)},
		"s.encode.base64": {fn: trStr(func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) })},
		"s.decode.base64": {fn: trStrErr(func(s string) (string, bool) {
			b, err := base64.StdEncoding.DecodeString(s)
			return string(b), err == nil && (len(b) > 0 || s == "")
		})},
		"s.escape.common":   {fn: trStr(escapeCommon)},
		"s.unescape.common": {fn: trStr(unescapeCommon)},
		"s.escape.user":     {fn: trStr(func(s string) string { return escapeURI(s, userUnreserved) })},
		"s.escape.param":    {fn: trStr(func(s string) string { return escapeURI(s, paramUnreserved) })},
		"s.unescape.user":   {fn: trStrErr(unescapeURI)},
		"s.unescape.param":  {fn: trStrErr(unescapeURI)},
		"s.urlencode.param": {fn: trStr(urlEncode)},
		"s.urldecode.param": {fn: trStr(urlDecode)},
		"s.replace":         {fn: trReplace, min: 2, max: 2},
		"s.rm":              {fn: trRm, min: 1, max: 1},
		"s.count":           {fn: trCount, min: 1, max: 1},
		"s.before":          {fn: trBeforeAfter(true), min: 1, max: 1},
		"s.after":           {fn: trBeforeAfter(false), min: 1, max: 1},
		"s.unquote":         {fn: trUnwrap(func(a, b byte) bool { return a == b && (a == '"' || a == '\'') })},
		"s.unbracket": {fn: trUnwrap(func(a, b byte) bool {
			return a == '(' && b == ')' || a == '[' && b == ']' || a == '{' && b == '}' || a == '<' && b == '>'
		})},
		"s.prefixes":        {fn: trPrefixes(false), max: 1},
		"s.prefixes.quoted": {fn: trPrefixes(true), max: 1},
		"s.numeric":         {fn: trNumeric},

		"uri.user":      {fn: trURI(func(u rawsip.URI, _ string) string { return u.User })},
		"uri.host":      {fn: trURI(func(u rawsip.URI, _ string) string { return u.Host })},
		"uri.domain":    {fn: trURI(func(u rawsip.URI, _ string) string { return u.Host })},
		"uri.passwd":    {fn: trURI(func(u rawsip.URI, _ string) string { return u.Password })},
		"uri.port":      {fn: trURIPort},
		"uri.params":    {fn: trURI(func(u rawsip.URI, _ string) string { return strings.TrimPrefix(u.Params, ";") })},
		"uri.headers":   {fn: trURI(func(u rawsip.URI, _ string) string { return strings.TrimPrefix(u.Headers, "?") })},
		"uri.transport": {fn: trURI(uriParam("transport"))},
		"uri.ttl":       {fn: trURI(uriParam("ttl"))},
		"uri.uparam":    {fn: trURI(uriParam("user"))},
		"uri.maddr":     {fn: trURI(uriParam("maddr"))},
		"uri.method":    {fn: trURI(uriParam("method"))},
		"uri.lr":        {fn: trURI(uriParam("lr"))},
		"uri.r2":        {fn: trURI(uriParam("r2"))},
		"uri.scheme":    {fn: trURI(func(u rawsip.URI, _ string) string { return u.Scheme })},
		"uri.param":     {fn: trURIParam, min: 1, max: 1},
		"uri.saor":      {fn: trURI(func(u rawsip.URI, _ string) string { return uriJoin(u, true, false) })},
		"uri.suri":      {fn: trURI(func(u rawsip.URI, _ string) string { return uriJoin(u, true, true) })},
		"uri.duri":      {fn: trURI(func(u rawsip.URI, _ string) string { return uriJoin(u, false, true) })},
		"uri.tosocket":  {fn: trURI(uriSocket)},

		"param.value":   {fn: trParam(plValue), min: 1, max: 2},
		"param.in":      {fn: trParam(plIn), min: 1, max: 2},
		"param.valueat": {fn: trParam(plValueAt), min: 1, max: 2},
		"param.name":    {fn: trParam(plName), min: 1, max: 2},
		"param.count":   {fn: trParamCount, max: 1},

		"nameaddr.name": {fn: trNameAddr(func(d, _ string, _ int) engine.Value { return engine.StrVal(d) })},
		"nameaddr.uri":  {fn: trNameAddr(func(_, u string, _ int) engine.Value { return engine.StrVal(u) })},
		"nameaddr.len":  {fn: trNameAddr(func(_, _ string, n int) engine.Value { return engine.IntVal(int64(n)) })},

		"tobody.uri":     {fn: trToBody(func(_, u, _ string, _ rawsip.URI) string { return u })},
		"tobody.display": {fn: trToBody(func(d, _, _ string, _ rawsip.URI) string { return d })},
		"tobody.tag":     {fn: trToBody(func(_, _, p string, _ rawsip.URI) string { t, _, _, _ := rawsip.Param(p, "tag"); return t })},
		"tobody.user":    {fn: trToBody(func(_, _, _ string, u rawsip.URI) string { return u.User })},
		"tobody.host":    {fn: trToBody(func(_, _, _ string, u rawsip.URI) string { return u.Host })},
		"tobody.params": {fn: trToBody(func(_, _, p string, _ rawsip.URI) string {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(p), ";"))
		})},

		"line.count": {fn: trLineCount},
		"line.at":    {fn: trLineAt, min: 1, max: 1},
		"line.sw":    {fn: trLineSw, min: 1, max: 1},
	}
}

// parseTrans reads "{class.name[,p1[,p2]]}" at s[0].
func parseTrans(s string, depth int) (Trans, int, error) {
	end, braces := -1, 0
	for j := 0; j < len(s) && end < 0; j++ {
		switch s[j] {
		case '{':
			braces++
		case '}':
			if braces--; braces == 0 {
				end = j
			}
		}
	}
	if end < 0 {
		return Trans{}, 0, fmt.Errorf("transformation without '}'")
	}
	body := s[1:end]
	name, params, hasParams := strings.Cut(body, ",")
	def, ok := transforms[name]
	if !ok {
		return Trans{}, 0, fmt.Errorf("unknown transformation {%s}", name)
	}
	tr := Trans{Name: name, fn: def.fn}
	if hasParams {
		var parts []string
		if def.max == 1 || def.rawLastParams {
			// a single parameter (or the last one) keeps its commas: {s.count,,} counts commas
			parts = strings.SplitN(params, ",", def.max)
		} else {
			parts = strings.Split(params, ",")
		}
		for _, ps := range parts {
			a, err := parseTrArg(ps, depth)
			if err != nil {
				return Trans{}, 0, fmt.Errorf("{%s}: %w", name, err)
			}
			tr.args = append(tr.args, a)
		}
	}
	if len(tr.args) < def.min || len(tr.args) > def.max {
		return Trans{}, 0, fmt.Errorf("{%s} takes %d to %d parameters, got %d", name, def.min, def.max, len(tr.args))
	}
	return tr, end + 1, nil
}

func parseTrArg(s string, depth int) (trArg, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "$") {
		sp, n, err := parseSpecAt(t, depth+1)
		if err != nil {
			return trArg{}, err
		}
		if n != len(t) {
			return trArg{}, fmt.Errorf("unexpected text after %s", t[:n])
		}
		return trArg{pv: sp}, nil
	}
	a := trArg{s: s}
	if n, err := strconv.Atoi(t); err == nil {
		a.n, a.isNum = n, true
	}
	return a, nil
}

// str returns a parameter as a string (a variable must give a non-empty string, as in Kamailio).
func (a trArg) str(p *PV, m *engine.Msg) (string, bool) {
	if a.pv == nil {
		return a.s, true
	}
	v := p.eval(m, a.pv)
	if v.Kind == engine.Null {
		return "", false
	}
	s := v.String()
	return s, s != ""
}

// num returns a parameter as an integer.
func (a trArg) num(p *PV, m *engine.Msg) (int, bool) {
	if a.pv == nil {
		return a.n, a.isNum
	}
	v := p.eval(m, a.pv)
	switch v.Kind {
	case engine.Int:
		return int(v.I), true
	case engine.Str:
		n, err := strconv.Atoi(strings.TrimSpace(v.S))
		return n, err == nil
	}
	return 0, false
}

// applyTrans runs the chain; a null value or a failing step gives null.
func (p *PV) applyTrans(m *engine.Msg, trs []Trans, v engine.Value) engine.Value {
	for _, tr := range trs {
		if v.Kind == engine.Null {
			return v
		}
		var ok bool
		if v, ok = tr.fn(p, m, tr.args, v); !ok {
			return engine.Value{}
		}
	}
	return v
}

func dropWS(r rune) rune {
	if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
		return -1
	}
	return r
}

func trLen(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
	return engine.IntVal(int64(len(v.String()))), true
}

// trInt is {s.int}: Kamailio's str2sint (an optional sign and digits, nothing else).
func trInt(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
	if v.Kind == engine.Int {
		return v, true
	}
	n, err := strconv.ParseInt(v.S, 10, 32)
	if err != nil {
		return engine.Value{}, false
	}
	return engine.IntVal(n), true
}

// trCase gives a string, also for an integer (Kamailio's integers carry their string form, which it
// converts).
func trCase(f func(string) string) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		return engine.StrVal(f(v.String())), true
	}
}

func trStr(f func(string) string) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		return engine.StrVal(f(v.String())), true
	}
}

func trStrErr(f func(string) (string, bool)) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		s, ok := f(v.String())
		return engine.StrVal(s), ok
	}
}

func decodeHexa(s string) (string, bool) {
	b, err := hex.DecodeString(s[:len(s)/2*2])
	return string(b), err == nil
}

// trSubstr is {s.substr,offset,length}: a negative offset counts from the end, length 0 (or past the end)
// means to the end, as in Kamailio.
func trSubstr(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	i, ok1 := args[0].num(p, m)
	j, ok2 := args[1].num(p, m)
	if !ok1 || !ok2 || j < 0 {
		return engine.Value{}, false
	}
	s := v.String()
	if i >= 0 {
		if i >= len(s) {
			return engine.Value{}, false
		}
		if i+j >= len(s) {
			j = 0
		}
		if j == 0 {
			return engine.StrVal(s[i:]), true
		}
		return engine.StrVal(s[i : i+j]), true
	}
	i = -i
	if i > len(s) {
		return engine.Value{}, false
	}
	if i < j {
		j = 0
	}
	if j == 0 {
		return engine.StrVal(s[len(s)-i:]), true
	}
	return engine.StrVal(s[len(s)-i : len(s)-i+j]), true
}

// trSelect is {s.select,index,sep}: the index-th field (negative from the end), "" when out of range.
func trSelect(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	i, ok := args[0].num(p, m)
	if !ok || args[1].pv != nil || args[1].s == "" {
		return engine.Value{}, false
	}
	sepS := args[1].s
	c := sepS[0]
	if len(sepS) > 1 {
		switch sepS[1] {
		case '\\':
			c = '\\'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default:
			return engine.Value{}, false
		}
	}
	fields := strings.Split(v.String(), string(c))
	if i < 0 {
		i += len(fields)
	}
	if i < 0 || i >= len(fields) {
		return engine.StrVal(""), true
	}
	return engine.StrVal(fields[i]), true
}

func trStrip(head bool) transFn {
	return func(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
		n, ok := args[0].num(p, m)
		if !ok {
			return engine.Value{}, false
		}
		s := v.String()
		switch {
		case n <= 0:
			return engine.StrVal(s), true
		case n >= len(s):
			return engine.StrVal(""), true
		case head:
			return engine.StrVal(s[n:]), true
		}
		return engine.StrVal(s[:len(s)-n]), true
	}
}

func trStripTo(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	sep, ok := args[0].str(p, m)
	if !ok || sep == "" {
		return engine.Value{}, false
	}
	s := v.String()
	if i := strings.IndexByte(s, sep[0]); i >= 0 {
		return engine.StrVal(s[i:]), true
	}
	return engine.StrVal(""), true
}

func trReplace(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	from, ok1 := args[0].str(p, m)
	to, ok2 := args[1].str(p, m)
	if !ok1 || !ok2 || from == "" {
		return engine.Value{}, false
	}
	return engine.StrVal(strings.ReplaceAll(v.String(), from, to)), true
}

func trRm(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	what, ok := args[0].str(p, m)
	if !ok || what == "" {
		return engine.Value{}, false
	}
	if args[0].pv == nil {
		what = strings.NewReplacer(`\n`, "\n", `\r`, "\r", `\t`, "\t", `\\`, `\`).Replace(what)
	}
	return engine.StrVal(strings.ReplaceAll(v.String(), what, "")), true
}

// trCount counts the occurrences of the parameter's first character (Kamailio compares one character).
func trCount(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	c, ok := args[0].str(p, m)
	if !ok || c == "" {
		return engine.Value{}, false
	}
	return engine.IntVal(int64(strings.Count(v.String(), c[:1]))), true
}

func trBeforeAfter(before bool) transFn {
	return func(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
		c, ok := args[0].str(p, m)
		if !ok || c == "" {
			return engine.Value{}, false
		}
		s := v.String()
		i := strings.IndexByte(s, c[0])
		if i < 0 {
			i = len(s)
		}
		if before {
			return engine.StrVal(s[:i]), true
		}
		if i >= len(s)-1 {
			return engine.StrVal(""), true
		}
		return engine.StrVal(s[i+1:]), true
	}
}

func trUnwrap(match func(a, b byte) bool) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		s := v.String()
		if len(s) < 2 {
			return v, true // unchanged, type included
		}
		if match(s[0], s[len(s)-1]) {
			s = s[1 : len(s)-1]
		}
		return engine.StrVal(s), true
	}
}

func trPrefixes(quoted bool) transFn {
	return func(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
		s := v.String()
		max := len(s)
		if len(args) == 1 {
			n, ok := args[0].num(p, m)
			if !ok {
				return engine.Value{}, false
			}
			if n > 0 && n < max {
				max = n
			}
		}
		var b strings.Builder
		for i := 1; i <= max; i++ {
			if i > 1 {
				b.WriteByte(',')
			}
			if quoted {
				b.WriteByte('\'')
			}
			b.WriteString(s[:i])
			if quoted {
				b.WriteByte('\'')
			}
		}
		return engine.StrVal(b.String()), true
	}
}

// trNumeric keeps the digits.
func trNumeric(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
	if v.Kind != engine.Str {
		return engine.Value{}, false
	}
	return engine.StrVal(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, v.S)), true
}

func escapeCommon(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeCommon(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case '0':
				b.WriteByte(0)
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

const (
	userUnreserved  = "-_.!~*'()&=+$,;?/"
	paramUnreserved = "-_.!~*'()[]/:&+$"
)

func escapeURI(s, keep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unescapeURI(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) {
				return "", false
			}
			x, err := hex.DecodeString(s[i+1 : i+3])
			if err != nil {
				return "", false
			}
			b.Write(x)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// trURI parses the value as a URI (a trailing ';' is ignored, as in Kamailio); an empty or unparsable
// value fails.
func trURI(part func(u rawsip.URI, raw string) string) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		u, ok := parseTrURI(v)
		if !ok {
			return engine.Value{}, false
		}
		return engine.StrVal(part(u, v.S)), true
	}
}

func parseTrURI(v engine.Value) (rawsip.URI, bool) {
	if v.Kind != engine.Str || v.S == "" {
		return rawsip.URI{}, false
	}
	s := v.S
	if len(s) > 4 && s[len(s)-1] == ';' {
		s = s[:len(s)-1]
	}
	return rawsip.ParseURI(s)
}

// trURIPort is {uri.port}: an integer, 0 when the URI has no port.
func trURIPort(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
	u, ok := parseTrURI(v)
	if !ok {
		return engine.Value{}, false
	}
	n, _ := strconv.Atoi(u.Port)
	return engine.IntVal(int64(n)), true
}

func uriParam(name string) func(rawsip.URI, string) string {
	return func(u rawsip.URI, _ string) string {
		val, _, _, _ := rawsip.Param(u.Params, name)
		return val
	}
}

func trURIParam(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	u, ok := parseTrURI(v)
	if !ok {
		return engine.Value{}, false
	}
	name, ok := args[0].str(p, m)
	if !ok {
		return engine.Value{}, false
	}
	val, _, _, _ := rawsip.Param(u.Params, name)
	return engine.StrVal(val), true
}

// uriJoin builds uri.saor (scheme:user@host), uri.suri (with port and transport) and uri.duri (no user).
func uriJoin(u rawsip.URI, user, port bool) string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	if user && u.User != "" {
		b.WriteString(u.User)
		b.WriteByte('@')
	}
	b.WriteString(u.Host)
	if port {
		if u.Port != "" {
			b.WriteByte(':')
			b.WriteString(u.Port)
		}
		if t, _, _, ok := rawsip.Param(u.Params, "transport"); ok && t != "" {
			b.WriteString(";transport=")
			b.WriteString(t)
		}
	}
	return b.String()
}

func uriSocket(u rawsip.URI, _ string) string {
	proto := "udp"
	if t, _, _, ok := rawsip.Param(u.Params, "transport"); ok && t != "" {
		proto = strings.ToLower(t)
	} else if strings.EqualFold(u.Scheme, "sips") {
		proto = "tls"
	}
	port := u.Port
	if port == "" {
		port = "5060"
	}
	return proto + ":" + u.Host + ":" + port
}

// param.* work on a "name=value;name2" list; the optional last parameter is the separator (one character).
type param struct{ name, value string }

func splitParams(s string, sep byte) []param {
	if len(s) > 1 && s[len(s)-1] == sep {
		s = s[:len(s)-1]
	}
	var out []param
	for _, f := range strings.Split(s, string(sep)) {
		k, val, _ := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		out = append(out, param{k, strings.Trim(strings.TrimSpace(val), "\"")})
	}
	return out
}

func trParam(op func(p *PV, m *engine.Msg, a trArg, ps []param) (engine.Value, bool)) transFn {
	return func(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
		if v.Kind != engine.Str || v.S == "" {
			return engine.Value{}, false
		}
		sep := byte(';')
		if len(args) == 2 {
			if args[1].pv != nil || len(args[1].s) != 1 {
				return engine.Value{}, false
			}
			sep = args[1].s[0]
		}
		ps := splitParams(v.S, sep)
		if len(ps) == 0 {
			return engine.Value{}, false
		}
		return op(p, m, args[0], ps)
	}
}

func plValue(p *PV, m *engine.Msg, a trArg, ps []param) (engine.Value, bool) {
	name, ok := a.str(p, m)
	if !ok {
		return engine.Value{}, false
	}
	for _, x := range ps {
		if strings.EqualFold(x.name, name) {
			return engine.StrVal(x.value), true
		}
	}
	return engine.StrVal(""), true
}

func plIn(p *PV, m *engine.Msg, a trArg, ps []param) (engine.Value, bool) {
	name, ok := a.str(p, m)
	if !ok {
		return engine.Value{}, false
	}
	for _, x := range ps {
		if strings.EqualFold(x.name, name) {
			return engine.IntVal(1), true
		}
	}
	return engine.IntVal(0), true
}

func plAt(p *PV, m *engine.Msg, a trArg, ps []param) (param, bool, bool) {
	n, ok := a.num(p, m)
	if !ok {
		return param{}, false, false
	}
	if n < 0 {
		n += len(ps)
	}
	if n < 0 || n >= len(ps) {
		return param{}, false, true
	}
	return ps[n], true, true
}

func plValueAt(p *PV, m *engine.Msg, a trArg, ps []param) (engine.Value, bool) {
	x, found, ok := plAt(p, m, a, ps)
	if !ok {
		return engine.Value{}, false
	}
	if !found {
		return engine.StrVal(""), true
	}
	return engine.StrVal(x.value), true
}

func plName(p *PV, m *engine.Msg, a trArg, ps []param) (engine.Value, bool) {
	x, found, ok := plAt(p, m, a, ps)
	if !ok {
		return engine.Value{}, false
	}
	if !found {
		return engine.StrVal(""), true
	}
	return engine.StrVal(x.name), true
}

func trParamCount(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	if v.Kind != engine.Str || v.S == "" {
		return engine.Value{}, false
	}
	sep := byte(';')
	if len(args) == 1 {
		s, ok := args[0].str(p, m)
		if !ok || len(s) != 1 && args[0].pv == nil {
			return engine.Value{}, false
		}
		sep = s[0]
	}
	ps := splitParams(v.S, sep)
	if len(ps) == 0 {
		return engine.Value{}, false
	}
	return engine.IntVal(int64(len(ps))), true
}

// trNameAddr is nameaddr.*: "Name <uri>" or a bare URI; len is the length of the name-addr part.
func trNameAddr(part func(display, uri string, n int) engine.Value) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		if v.Kind != engine.Str || v.S == "" {
			return engine.Value{}, false
		}
		s := v.S
		lt := rawsip.IndexUnquoted(s, '<')
		if lt < 0 {
			return part("", s, len(s)), true
		}
		gt := strings.IndexByte(s[lt:], '>')
		if gt < 0 {
			return engine.Value{}, false
		}
		return part(s[:lt], s[lt+1:lt+gt], lt+gt+1), true // the name keeps its trailing space, as in Kamailio
	}
}

// trToBody is tobody.*: the value parsed as a To/From body, whose URI must parse.
func trToBody(part func(display, uri, params string, u rawsip.URI) string) transFn {
	return func(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
		if v.Kind != engine.Str || v.S == "" {
			return engine.Value{}, false
		}
		d, uri, params, ok := rawsip.NameAddr(v.S)
		if !ok {
			return engine.Value{}, false
		}
		u, ok := rawsip.ParseURI(uri)
		if !ok {
			return engine.Value{}, false
		}
		return engine.StrVal(part(d, uri, params, u)), true
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	return strings.Split(s, "\n")
}

// trLineCount is {line.count}: a string in Lua, as Kamailio 5.6.3 gives it.
func trLineCount(_ *PV, _ *engine.Msg, _ []trArg, v engine.Value) (engine.Value, bool) {
	s := v.String()
	if s == "" {
		return engine.StrVal("0"), true
	}
	return engine.StrVal(strconv.Itoa(len(lines(s)))), true
}

func trLineAt(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	n, ok := args[0].num(p, m)
	if !ok {
		return engine.Value{}, false
	}
	ls := lines(v.String())
	if n < 0 {
		n += len(ls)
	}
	if n < 0 || n >= len(ls) {
		return engine.Value{}, false
	}
	return engine.StrVal(strings.TrimSuffix(ls[n], "\r")), true
}

func trLineSw(p *PV, m *engine.Msg, args []trArg, v engine.Value) (engine.Value, bool) {
	pre, ok := args[0].str(p, m)
	if !ok {
		return engine.Value{}, false
	}
	for _, l := range lines(v.String()) {
		if strings.HasPrefix(l, pre) {
			return engine.StrVal(strings.TrimSuffix(l, "\r")), true
		}
	}
	return engine.StrVal(""), true
}

// urlEncode is Kamailio's urlencode: letters, digits and -_.~ kept, the rest %xx (lower-case hex).
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		const hexd = "0123456789abcdef"
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// urlDecode is Kamailio's urldecode: %xx decoded, '+' is a space.
func urlDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s):
			x, err := hex.DecodeString(s[i+1 : i+3])
			if err == nil {
				b.Write(x)
			}
			i += 2
		case c == '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
