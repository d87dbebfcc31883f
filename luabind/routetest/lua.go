package routetest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind"
	lua "github.com/yuin/gopher-lua"
)

// siptestTable builds the siptest global of a test file.
func (r *runner) siptestTable() *lua.LTable {
	L := r.L
	t := L.NewTable()
	fns := map[string]lua.LGFunction{
		"request": r.luaRequest,
		"raw":     r.luaRaw,
		"run":     r.luaRun,
		"reply":   r.luaReply,
		"ctl":     r.luaCtl,
		"digest":  r.luaDigest,
		"eq":      luaEq,
		"ok":      luaOk,
		"match":   luaMatch,
		"fail":    func(L *lua.LState) int { L.RaiseError("%s", L.OptString(1, "failed")); return 0 },
		"log": func(L *lua.LState) int {
			if r.cur != nil {
				parts := make([]string, L.GetTop())
				for i := range parts {
					parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
				}
				r.cur.notes = append(r.cur.notes, strings.TrimSuffix(L.Where(1), ":")+": "+strings.Join(parts, " "))
			}
			return 0
		},
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	return t
}

// show renders a value in assertion messages: strings quoted, tables as such.
func show(v lua.LValue) string {
	if s, ok := v.(lua.LString); ok {
		return strconv.Quote(string(s))
	}
	return v.String()
}

func note(L *lua.LState, i int) string {
	if s := L.OptString(i, ""); s != "" {
		return " (" + s + ")"
	}
	return ""
}

// luaEq is siptest.eq(got, want [, message]): numbers compare as numbers, a number and a numeric string
// are not equal (a script that compares them gets it wrong too).
func luaEq(L *lua.LState) int {
	got, want := L.Get(1), L.Get(2)
	if !L.Equal(got, want) {
		L.RaiseError("expected %s, got %s%s", show(want), show(got), note(L, 3))
	}
	return 0
}

// luaOk is siptest.ok(value [, message]): value is neither nil nor false.
func luaOk(L *lua.LState) int {
	if !lua.LVAsBool(L.Get(1)) {
		L.RaiseError("expected a true value, got %s%s", show(L.Get(1)), note(L, 2))
	}
	return 0
}

// luaMatch is siptest.match(s, pattern [, message]) with Lua patterns (string.find).
func luaMatch(L *lua.LState) int {
	v, pat := L.Get(1), L.CheckString(2)
	s, ok := v.(lua.LString)
	if !ok {
		L.RaiseError("expected a string matching %q, got %s%s", pat, show(v), note(L, 3))
	}
	if !luaFind(L, string(s), pat) {
		L.RaiseError("expected a string matching %q, got %s%s", pat, show(v), note(L, 3))
	}
	return 0
}

// luaFind tells whether s matches the Lua pattern pat (string.find).
func luaFind(L *lua.LState, s, pat string) bool {
	find := L.GetField(L.GetGlobal("string"), "find")
	if find == lua.LNil { // string library not open: a plain substring
		return strings.Contains(s, pat)
	}
	L.Push(find)
	L.Push(lua.LString(s))
	L.Push(lua.LString(pat))
	L.Call(2, 1)
	res := L.Get(-1)
	L.Pop(1)
	return res != lua.LNil && res != lua.LFalse
}

// luaRequest is siptest.request{method=, ruri=, from=, to=, to_tag=, headers=, body=, from_ip=,
// from_port=, proto=}: a request as a phone would send it, with every mandatory header.
func (r *runner) luaRequest(L *lua.LState) int {
	spec := L.CheckTable(1)
	tc := r.engine()
	tc.seq++
	str := func(k, def string) string {
		if v := spec.RawGetString(k); v != lua.LNil {
			return L.ToStringMeta(v).String()
		}
		return def
	}
	local := "127.0.0.1"
	if ls := tc.e.Listeners(); len(ls) > 0 {
		local = ls[0].SentBy
		if h, _, err := engine.SplitHostPort(local); err == nil {
			local = h
		}
	}
	method := strings.ToUpper(str("method", "OPTIONS"))
	fromIP, fromPort, proto := str("from_ip", "192.0.2.10"), str("from_port", "5060"), strings.ToUpper(str("proto", "udp"))
	ruri := str("ruri", "")
	if ruri == "" {
		ruri = "sip:bob@" + local
		if method == "REGISTER" || method == "OPTIONS" {
			ruri = "sip:" + local
		}
	}
	from := str("from", "sip:alice@"+local)
	to := str("to", "")
	if to == "" {
		to = ruri
		if method == "REGISTER" {
			to = from
		}
	}
	toHdr := "<" + to + ">"
	if tag := str("to_tag", ""); tag != "" {
		toHdr += ";tag=" + tag
	}
	n := strconv.Itoa(tc.seq)
	type hdr struct{ name, value string }
	hdrs := []hdr{
		{"Via", fmt.Sprintf("SIP/2.0/%s %s;branch=z9hG4bK-siptest-%s;rport", proto, joinHostPort(fromIP, fromPort), n)},
		{"Max-Forwards", "70"},
		{"From", "<" + from + ">;tag=siptest-" + n},
		{"To", toHdr},
		{"Call-ID", "siptest-" + n + "@" + fromIP},
		{"CSeq", str("cseq", "1") + " " + method},
	}
	switch method {
	case "INVITE", "REGISTER", "SUBSCRIBE":
		user := "alice"
		if u, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(from, "sips:"), "sip:"), "@"); ok {
			user = u
		}
		hdrs = append(hdrs, hdr{"Contact", fmt.Sprintf("<sip:%s@%s>", user, joinHostPort(fromIP, fromPort))})
	}
	body := str("body", "")
	if body != "" {
		hdrs = append(hdrs, hdr{"Content-Type", "application/sdp"})
	}
	// headers = {Name = "value" | {"v1", "v2"} | false} (sorted by name) or {{"Name", "value"}, ...} (in
	// order): a name given replaces the default header of that name, false removes it.
	type extra struct {
		name string
		vals []string
	}
	var extras []extra
	if ht, ok := spec.RawGetString("headers").(*lua.LTable); ok {
		ht.ForEach(func(k, v lua.LValue) {
			if pair, ok := v.(*lua.LTable); ok && k.Type() == lua.LTNumber {
				extras = append(extras, extra{pair.RawGetInt(1).String(), []string{L.ToStringMeta(pair.RawGetInt(2)).String()}})
				return
			}
			e := extra{name: k.String()}
			switch v := v.(type) {
			case *lua.LTable:
				v.ForEach(func(_, x lua.LValue) { e.vals = append(e.vals, L.ToStringMeta(x).String()) })
			case lua.LBool:
				if v {
					L.RaiseError("headers.%s: a value or false (remove), not true", e.name)
				}
			default:
				e.vals = []string{L.ToStringMeta(v).String()}
			}
			extras = append(extras, e)
		})
		if ht.Len() == 0 {
			sort.SliceStable(extras, func(i, j int) bool { return extras[i].name < extras[j].name })
		}
	}
	for _, e := range extras {
		kept := hdrs[:0]
		for _, h := range hdrs {
			if !strings.EqualFold(h.name, e.name) {
				kept = append(kept, h)
			}
		}
		hdrs = kept
		for _, v := range e.vals {
			hdrs = append(hdrs, hdr{e.name, v})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	for _, h := range hdrs {
		fmt.Fprintf(&b, "%s: %s\r\n", h.name, h.value)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	L.Push(r.msgTable(b.String(), fromIP, fromPort, strings.ToLower(proto)))
	return 1
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// luaRaw is siptest.raw(text [, {from_ip=, from_port=, proto=}]): a message as written, lines with or
// without CR and with their indentation removed, Content-Length fixed to the body.
func (r *runner) luaRaw(L *lua.LState) int {
	text := L.CheckString(1)
	opts := L.OptTable(2, L.NewTable())
	get := func(k, def string) string {
		if v := opts.RawGetString(k); v != lua.LNil {
			return v.String()
		}
		return def
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, _ := strings.Cut(strings.TrimLeft(text, " \t\n"), "\n\n")
	var b strings.Builder
	for _, line := range strings.Split(head, "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || strings.HasPrefix(strings.ToLower(line), "content-length:") || strings.HasPrefix(line, "l:") {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	L.Push(r.msgTable(b.String(), get("from_ip", "192.0.2.10"), get("from_port", "5060"), strings.ToLower(get("proto", "udp"))))
	return 1
}

func (r *runner) msgTable(raw, ip, port, proto string) *lua.LTable {
	t := r.L.NewTable()
	t.RawSetString("raw", lua.LString(raw))
	t.RawSetString("from_ip", lua.LString(ip))
	t.RawSetString("from_port", lua.LString(port))
	t.RawSetString("proto", lua.LString(proto))
	return t
}

// luaRun is siptest.run(msg [, {allow_error=true}]): routes msg and returns what happened. A route that
// overran route_timeout fails the test; so does a script error, unless allow_error (then result.error).
func (r *runner) luaRun(L *lua.LState) int {
	msg := L.CheckTable(1)
	opts := L.OptTable(2, L.NewTable())
	raw, ok := msg.RawGetString("raw").(lua.LString)
	if !ok {
		L.ArgError(1, "a message from siptest.request or siptest.raw")
	}
	src, proto := r.source(msg)
	L.Push(r.route([]byte(raw), src, proto, lua.LVAsBool(opts.RawGetString("allow_error"))))
	return 1
}

func (r *runner) source(msg *lua.LTable) (netip.AddrPort, engine.Proto) {
	L := r.L
	ip, err := netip.ParseAddr(strings.Trim(msg.RawGetString("from_ip").String(), "[]"))
	if err != nil {
		L.RaiseError("from_ip: expected an IP address, got %q", msg.RawGetString("from_ip").String())
	}
	port, err := strconv.Atoi(msg.RawGetString("from_port").String())
	if err != nil || port < 1 || port > 65535 {
		L.RaiseError("from_port: expected 1..65535, got %q", msg.RawGetString("from_port").String())
	}
	proto, ok := engine.ParseProto(msg.RawGetString("proto").String())
	if !ok {
		L.RaiseError("proto: expected udp or tcp, got %q", msg.RawGetString("proto").String())
	}
	return netip.AddrPortFrom(ip, uint16(port)), proto
}

// route runs one message and builds the result table.
func (r *runner) route(raw []byte, src netip.AddrPort, proto engine.Proto, allowError bool) *lua.LTable {
	L := r.L
	tc := r.engine()
	tc.takeSent() // what module timers sent before this message is not its doing
	var exits0 int
	st0 := stateOf(tc)
	if st0 != nil {
		exits0 = st0.Exits()
	}
	tc.sink.start()
	res := tc.e.RouteOffline(raw, src, proto)
	logs := tc.sink.stop()
	sent := tc.takeSent()
	tc.last = res.Msg
	if bad := firstLog(logs, "malformed message"); bad != "" && !allowError {
		L.RaiseError("the message is malformed (the proxy did not route it): %s", bad)
	}
	if res.TimedOut {
		where := "the route"
		for _, l := range logs {
			if w := l.Attrs["where"]; w != "" {
				where = relPath(w)
				break
			}
		}
		L.RaiseError("route exceeded [lua] route_timeout (%v) at %s", tc.cfg.Lua.RouteBudget(), where)
	}
	t := L.NewTable()
	if res.Err != nil {
		if !allowError {
			L.RaiseError("script error: %s", routeErrText(logs))
		}
		t.RawSetString("error", lua.LString(routeErrText(logs)))
	}
	var replies, relays []*lua.LTable
	for _, s := range sent {
		st := sentTable(L, s)
		if strings.HasPrefix(string(s.Data), "SIP/2.0 ") {
			replies = append(replies, st)
		} else {
			relays = append(relays, st)
		}
	}
	list := func(ts []*lua.LTable) *lua.LTable {
		l := L.NewTable()
		for _, x := range ts {
			l.Append(x)
		}
		return l
	}
	t.RawSetString("replies", list(replies))
	t.RawSetString("relays", list(relays))
	if len(relays) > 0 {
		t.RawSetString("relay", relays[0])
	}
	// reply: the last final reply sent, else the last provisional one
	var reply *lua.LTable
	for _, x := range replies {
		if reply == nil || lua.LVAsNumber(x.RawGetString("status")) >= 200 || lua.LVAsNumber(reply.RawGetString("status")) < 200 {
			reply = x
		}
	}
	if reply != nil {
		t.RawSetString("reply", reply)
		t.RawSetString("status", reply.RawGetString("status"))
		t.RawSetString("reason", reply.RawGetString("reason"))
	}
	m := res.Msg
	st := stateOf(tc)
	t.RawSetString("exit", lua.LBool(st != nil && st.Exits() > exits0))
	t.RawSetString("drop", lua.LBool(m.Dropped))
	if m.IsRequest() {
		ruri := m.NewURI
		if ruri == "" {
			ruri = m.RURI()
		}
		t.RawSetString("ruri", lua.LString(ruri))
		if m.DstURI != "" {
			t.RawSetString("du", lua.LString(m.DstURI))
		}
	}
	branches := L.NewTable()
	for _, b := range m.Branches {
		bt := L.NewTable()
		bt.RawSetString("uri", lua.LString(b.URI))
		if b.DstURI != "" {
			bt.RawSetString("du", lua.LString(b.DstURI))
		}
		bt.RawSetString("q", lua.LNumber(b.Q))
		branches.Append(bt)
	}
	t.RawSetString("branches", branches)
	lt := L.NewTable()
	var text []string
	for _, rec := range logs {
		x := L.NewTable()
		x.RawSetString("level", lua.LString(strings.ToLower(rec.Level.String())))
		x.RawSetString("msg", lua.LString(rec.Msg))
		x.RawSetString("module", lua.LString(rec.Module))
		lt.Append(x)
		text = append(text, rec.Msg)
	}
	t.RawSetString("logs", lt)
	t.RawSetString("log_text", lua.LString(strings.Join(text, "\n")))
	t.RawSetString("logged", L.NewFunction(func(L *lua.LState) int {
		pat := L.CheckString(argAfterSelf(L, t))
		for _, rec := range logs {
			if luaFind(L, rec.Msg, pat) {
				L.Push(lua.LTrue)
				return 1
			}
		}
		L.Push(lua.LFalse)
		return 1
	}))
	t.RawSetString("flag", L.NewFunction(func(L *lua.LState) int {
		n := L.CheckInt(argAfterSelf(L, t))
		L.Push(lua.LBool(n >= 0 && n < 64 && m.Flags&(1<<n) != 0))
		return 1
	}))
	t.RawSetString("pv", L.NewFunction(func(L *lua.LState) int {
		spec := L.CheckString(argAfterSelf(L, t))
		L.Push(r.pv(tc, m, spec))
		return 1
	}))
	return t
}

// argAfterSelf lets result functions be called as res.pv("$du") and res:pv("$du").
func argAfterSelf(L *lua.LState, self *lua.LTable) int {
	if L.Get(1) == self {
		return 2
	}
	return 1
}

// pv reads a pseudo-variable after the route with the pv module's own getter (KSR.pv.get).
func (r *runner) pv(tc *testCase, m *engine.Msg, spec string) lua.LValue {
	inst, ok := tc.e.Module("pv")
	if ok {
		for _, ex := range inst.Exports() {
			if get, ok := ex.Fn.(func(*engine.Msg, string) engine.Value); ok && ex.Name == "get" {
				v := get(m, spec)
				switch v.Kind {
				case engine.Str:
					return lua.LString(v.S)
				case engine.Int:
					return lua.LNumber(v.I)
				}
				return lua.LNil
			}
		}
	}
	r.L.RaiseError("pv(%q): the pv module is not loaded (add [modules.pv] to the configuration)", spec)
	return lua.LNil
}

func stateOf(tc *testCase) *luabind.State {
	// the state of worker 0 of the current generation: made by luabind, reached through a routed message
	if tc.last != nil {
		if st, ok := tc.last.ScriptState().(*luabind.State); ok {
			return st
		}
	}
	return nil
}

func firstLog(logs []logRec, msg string) string {
	for _, l := range logs {
		if l.Msg == msg {
			return l.Attrs["err"]
		}
	}
	return ""
}

// routeErrText is the script error the engine logged: "file.lua:12: message".
func routeErrText(logs []logRec) string {
	for _, l := range logs {
		if w, ok := l.Attrs["where"]; ok && l.Attrs["err"] != "" && strings.Contains(l.Msg, "route") {
			return relPath(w) + ": " + l.Attrs["err"]
		}
	}
	for _, l := range logs {
		if l.Level >= 8 { // slog.LevelError
			return l.String()
		}
	}
	return "see the log"
}

// relPath shortens "/abs/dir/script.lua:12" to the path relative to the working directory when below it.
func relPath(where string) string {
	file, line, ok := strings.Cut(where, ".lua:")
	if !ok {
		return where
	}
	return displayName(file+".lua") + ":" + line
}

// sentTable describes one captured message for Lua.
func sentTable(L *lua.LState, s engine.Sent) *lua.LTable {
	t := L.NewTable()
	raw := string(s.Data)
	t.RawSetString("raw", lua.LString(raw))
	t.RawSetString("proto", lua.LString(strings.ToLower(s.Proto.String())))
	t.RawSetString("dst", lua.LString(strings.ToLower(s.Proto.String())+":"+s.Dst.String()))
	t.RawSetString("host", lua.LString(s.Dst.Addr().String()))
	t.RawSetString("port", lua.LNumber(s.Dst.Port()))
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	t.RawSetString("body", lua.LString(body))
	lines := strings.Split(head, "\r\n")
	first := strings.SplitN(lines[0], " ", 3)
	if strings.HasPrefix(lines[0], "SIP/2.0 ") && len(first) >= 2 {
		code, _ := strconv.Atoi(first[1])
		t.RawSetString("status", lua.LNumber(code))
		if len(first) == 3 {
			t.RawSetString("reason", lua.LString(first[2]))
		}
	} else if len(first) >= 2 {
		t.RawSetString("method", lua.LString(first[0]))
		t.RawSetString("ruri", lua.LString(first[1]))
	}
	type hv struct{ name, value string }
	var hs []hv
	for _, l := range lines[1:] {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(hs) > 0 { // folded
			hs[len(hs)-1].value += " " + strings.TrimSpace(l)
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		hs = append(hs, hv{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	ht := L.NewTable()
	for _, h := range hs {
		pair := L.NewTable()
		pair.Append(lua.LString(h.name))
		pair.Append(lua.LString(h.value))
		ht.Append(pair)
	}
	t.RawSetString("headers", ht)
	values := func(name string) []string {
		want := engine.HeaderName(name)
		var out []string
		for _, h := range hs {
			if engine.HeaderName(h.name) == want {
				out = append(out, h.value)
			}
		}
		return out
	}
	// header(name): the first value (nil when absent); hdrs(name): every value, in order
	t.RawSetString("header", L.NewFunction(func(L *lua.LState) int {
		if v := values(L.CheckString(argAfterSelf(L, t))); len(v) > 0 {
			L.Push(lua.LString(v[0]))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	t.RawSetString("hdrs", L.NewFunction(func(L *lua.LState) int {
		l := L.NewTable()
		for _, v := range values(L.CheckString(argAfterSelf(L, t))) {
			l.Append(lua.LString(v))
		}
		L.Push(l)
		return 1
	}))
	return t
}

// luaReply is siptest.reply(relay, code [, reason [, headers]]): the next hop answers a relayed request
// (from the address it was sent to); returns the result of routing that reply (the reply relayed back is
// in result.replies, a failure route's new relay in result.relays).
func (r *runner) luaReply(L *lua.LState) int {
	req := L.CheckTable(1)
	code := L.CheckInt(2)
	reason := L.OptString(3, engine.Reason(code))
	extra := L.OptTable(4, nil)
	raw, ok := req.RawGetString("raw").(lua.LString)
	if !ok || !strings.Contains(req.RawGetString("dst").String(), ":") {
		L.ArgError(1, "a relayed request (result.relay or an element of result.relays)")
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, value, _ := strings.Cut(l, ":")
		switch engine.HeaderName(strings.TrimSpace(name)) {
		case "via", "from", "call-id", "cseq", "record-route":
			b.WriteString(l + "\r\n")
		case "to":
			if code > 100 && !strings.Contains(value, ";tag=") {
				l += ";tag=siptest-uas"
			}
			b.WriteString(l + "\r\n")
		}
	}
	if extra != nil {
		extra.ForEach(func(k, v lua.LValue) { fmt.Fprintf(&b, "%s: %s\r\n", k.String(), v.String()) })
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	dst, err := netip.ParseAddrPort(strings.SplitN(req.RawGetString("dst").String(), ":", 2)[1])
	if err != nil {
		L.ArgError(1, "relay.dst: "+err.Error())
	}
	proto, _ := engine.ParseProto(req.RawGetString("proto").String())
	L.Push(r.route([]byte(b.String()), dst, proto, false))
	return 1
}

// luaCtl is siptest.ctl(command, args...): a module's control command (what `siplua ctl` calls), to seed
// state: ul.add, htable.seti, dispatcher.set_state ... Returns its result as Lua values.
func (r *runner) luaCtl(L *lua.LState) int {
	name := L.CheckString(1)
	args := make([]string, 0, L.GetTop())
	for i := 2; i <= L.GetTop(); i++ {
		args = append(args, L.ToStringMeta(L.Get(i)).String())
	}
	tc := r.engine()
	var names []string
	for _, l := range tc.cfg.Mods.List {
		c, ok := l.Inst.(engine.Commander)
		if !ok {
			continue
		}
		for _, cmd := range c.RPC() {
			names = append(names, cmd.Name)
			if cmd.Name != name {
				continue
			}
			out, err := cmd.Fn(args)
			if err != nil {
				L.RaiseError("ctl %s: %v", name, err)
			}
			L.Push(toLua(L, out))
			return 1
		}
	}
	hint := ""
	if s := engine.Suggest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", s)
	}
	L.RaiseError("ctl %s: no such command among the loaded modules%s", name, hint)
	return 0
}

// toLua converts a command's result (marshalled to JSON, as `siplua ctl` shows it) to Lua values.
func toLua(L *lua.LState, v any) lua.LValue {
	b, err := json.Marshal(v)
	if err != nil {
		return lua.LString(fmt.Sprint(v))
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return lua.LString(string(b))
	}
	var conv func(any) lua.LValue
	conv = func(x any) lua.LValue {
		switch x := x.(type) {
		case nil:
			return lua.LNil
		case bool:
			return lua.LBool(x)
		case float64:
			return lua.LNumber(x)
		case string:
			return lua.LString(x)
		case []any:
			t := L.NewTable()
			for _, e := range x {
				t.Append(conv(e))
			}
			return t
		case map[string]any:
			t := L.NewTable()
			for k, e := range x {
				t.RawSetString(k, conv(e))
			}
			return t
		}
		return lua.LString(fmt.Sprint(x))
	}
	return conv(x)
}
