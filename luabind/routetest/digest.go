package routetest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// luaDigest is siptest.digest(result, user, password [, {algorithm=, uri=}]): the credentials that answer
// the challenge of result.reply (401 WWW-Authenticate or 407 Proxy-Authenticate), as the headers table of
// the next request: {Authorization = 'Digest ...'}. The URI is the request's R-URI (result.ruri), the
// method the one in the reply's CSeq; the first challenge with a known algorithm (SHA-256, MD5) is taken
// unless algorithm names one.
func (r *runner) luaDigest(L *lua.LState) int {
	res := L.CheckTable(1)
	user, pass := L.CheckString(2), L.CheckString(3)
	opts := L.OptTable(4, L.NewTable())
	reply, ok := res.RawGetString("reply").(*lua.LTable)
	if !ok {
		L.ArgError(1, "a result with a 401 or 407 reply")
	}
	hdrName, credName := "WWW-Authenticate", "Authorization"
	if lua.LVAsNumber(reply.RawGetString("status")) == 407 {
		hdrName, credName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var challenges []map[string]string
	if hs, ok := reply.RawGetString("headers").(*lua.LTable); ok {
		hs.ForEach(func(_, v lua.LValue) {
			p := v.(*lua.LTable)
			if strings.EqualFold(p.RawGetInt(1).String(), hdrName) {
				challenges = append(challenges, digestParams(p.RawGetInt(2).String()))
			}
		})
	}
	want := strings.ToUpper(opts.RawGetString("algorithm").String())
	var ch map[string]string
	for _, c := range challenges {
		alg := strings.ToUpper(c["algorithm"])
		if alg == "" {
			alg = "MD5"
		}
		if (want == "NIL" && (alg == "MD5" || alg == "SHA-256")) || alg == want {
			c["algorithm"] = alg
			ch = c
			break
		}
	}
	if ch == nil {
		L.RaiseError("siptest.digest: the reply has no %s challenge that can be answered (%d found)", hdrName, len(challenges))
	}
	uri := res.RawGetString("ruri").String()
	if u := opts.RawGetString("uri"); u != lua.LNil {
		uri = u.String()
	}
	method := "REGISTER"
	if cs, ok := reply.RawGetString("header").(*lua.LFunction); ok {
		L.Push(cs)
		L.Push(lua.LString("CSeq"))
		L.Call(1, 1)
		if f := strings.Fields(L.Get(-1).String()); len(f) == 2 {
			method = f[1]
		}
		L.Pop(1)
	}
	var h func() hash.Hash = md5.New
	if ch["algorithm"] == "SHA-256" {
		h = sha256.New
	}
	sum := func(s string) string { x := h(); x.Write([]byte(s)); return hex.EncodeToString(x.Sum(nil)) }
	ha1 := sum(user + ":" + ch["realm"] + ":" + pass)
	ha2 := sum(method + ":" + uri)
	cnonce, nc := "siptest0cnonce", "00000001"
	var resp, qopPart string
	if strings.Contains(ch["qop"], "auth") {
		resp = sum(ha1 + ":" + ch["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
		qopPart = fmt.Sprintf(", qop=auth, nc=%s, cnonce=\"%s\"", nc, cnonce)
	} else {
		resp = sum(ha1 + ":" + ch["nonce"] + ":" + ha2)
	}
	v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s%s`,
		user, ch["realm"], ch["nonce"], uri, resp, ch["algorithm"], qopPart)
	if o := ch["opaque"]; o != "" {
		v += fmt.Sprintf(`, opaque="%s"`, o)
	}
	t := L.NewTable()
	t.RawSetString(credName, lua.LString(v))
	L.Push(t)
	return 1
}

// digestParams reads the parameters of a Digest challenge.
func digestParams(v string) map[string]string {
	out := map[string]string{}
	v = strings.TrimSpace(v)
	if len(v) >= 6 && strings.EqualFold(v[:6], "digest") {
		v = v[6:]
	}
	for len(v) > 0 {
		v = strings.TrimLeft(v, " ,\t")
		k, rest, ok := strings.Cut(v, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		rest = strings.TrimLeft(rest, " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				val, rest = rest[1:], ""
			} else {
				val, rest = rest[1:end+1], rest[end+2:]
			}
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		out[k] = val
		v = rest
	}
	return out
}
