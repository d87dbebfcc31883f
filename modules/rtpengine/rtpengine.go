// Package rtpengine controls Sipwise rtpengine media relays over the ng protocol (Kamailio's rtpengine
// module): offer/answer/delete rewrite a call's SDP to the relay's address and ports, and the media
// commands (recording, blocking, playing) act on a running call. The ng call is made on the route worker
// with a strict timeout (rtpengine_tout_ms, with one failover to another instance) and a bound on the
// requests in flight, so a dead relay costs a route at most two timeouts and never piles up workers.
package rtpengine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
)

const modName = "rtpengine"

func init() {
	engine.Register(engine.Module{Name: modName, New: func() engine.Instance { return New() }})
}

// New returns the module with Kamailio's defaults.
func New() *RTPEngine {
	return &RTPEngine{ToutMs: 1000, Retr: 2, DisableTout: 60, MaxInflight: 256}
}

// RTPEngine holds the parameters (Kamailio's names) and the ng client.
type RTPEngine struct {
	// Sock lists the instances: "udp:host:port", with an optional weight "=2" and set "1 == " (Kamailio
	// rtpengine_sock; set 0 is the default set). None: the module loads, its functions fail (-1), a
	// warning says so at start (Kamailio refuses to start).
	Sock []string `toml:"rtpengine_sock"`
	// ToutMs: how long one instance is given to answer, retransmissions included (rtpengine_tout_ms).
	ToutMs int `toml:"rtpengine_tout_ms"`
	// Retr: retransmissions of a request within rtpengine_tout_ms (UDP loses packets).
	Retr int `toml:"rtpengine_retr"`
	// DisableTout: seconds an instance that did not answer is skipped (rtpengine_disable_tout).
	DisableTout int `toml:"rtpengine_disable_tout"`
	// MaxInflight bounds the ng requests waiting for an answer, all workers together; past it a function
	// fails at once (-1).
	MaxInflight int `toml:"max_inflight"`

	log *slog.Logger
	c   *client
}

// Validate checks the parameters.
func (r *RTPEngine) Validate() error {
	for _, s := range r.Sock {
		if _, err := parseSock(s); err != nil {
			return err
		}
	}
	if r.ToutMs < 10 || r.ToutMs > 60000 {
		return fmt.Errorf("rtpengine_tout_ms: expected 10..60000 ms, got %d", r.ToutMs)
	}
	if r.Retr < 0 || r.Retr > 10 {
		return fmt.Errorf("rtpengine_retr: expected 0..10, got %d", r.Retr)
	}
	if r.DisableTout < 0 {
		return fmt.Errorf("rtpengine_disable_tout: expected >= 0 seconds, got %d", r.DisableTout)
	}
	if r.MaxInflight < 1 {
		return fmt.Errorf("max_inflight: expected >= 1, got %d", r.MaxInflight)
	}
	return nil
}

// Start opens a socket per instance.
func (r *RTPEngine) Start(env *engine.Env) error {
	r.log = env.Log
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &client{tout: time.Duration(r.ToutMs) * time.Millisecond, retr: r.Retr,
		disable: time.Duration(r.DisableTout) * time.Second, inflight: make(chan struct{}, r.MaxInflight),
		prefix: hex.EncodeToString(b[:]) + "_"}
	for _, s := range r.Sock {
		in, _ := parseSock(s)
		if err := in.open(); err != nil {
			c.close()
			return err
		}
		c.insts = append(c.insts, in)
	}
	r.c = c
	if len(c.insts) == 0 {
		r.logger().Warn("no rtpengine_sock: every rtpengine function fails (-1)")
	}
	return nil
}

// Stop closes the sockets.
func (r *RTPEngine) Stop() error {
	if r.c != nil {
		r.c.close()
	}
	return nil
}

func (r *RTPEngine) logger() *slog.Logger {
	if r.log == nil {
		return slog.Default()
	}
	return r.log
}

// Exports: KSR.rtpengine.* (the 30 functions of Kamailio 5.6).
func (r *RTPEngine) Exports() []engine.Export {
	cmd := func(name string) func(*engine.Msg, string) int {
		return func(m *engine.Msg, flags string) int { return r.command(m, name, flags) }
	}
	cmd0 := func(name string) func(*engine.Msg) int {
		return func(m *engine.Msg) int { return r.command(m, name, "") }
	}
	return []engine.Export{
		{Name: "rtpengine_offer", Fn: func(m *engine.Msg, f string) int { return r.offerAnswer(m, "offer", f) }},
		{Name: "rtpengine_offer0", Fn: func(m *engine.Msg) int { return r.offerAnswer(m, "offer", "") }},
		{Name: "rtpengine_answer", Fn: func(m *engine.Msg, f string) int { return r.offerAnswer(m, "answer", f) }},
		{Name: "rtpengine_answer0", Fn: func(m *engine.Msg) int { return r.offerAnswer(m, "answer", "") }},
		{Name: "rtpengine_delete", Fn: cmd("delete")},
		{Name: "rtpengine_delete0", Fn: cmd0("delete")},
		{Name: "rtpengine_manage", Fn: r.manage},
		{Name: "rtpengine_manage0", Fn: func(m *engine.Msg) int { return r.manage(m, "") }},
		{Name: "rtpengine_query", Fn: cmd("query")},
		{Name: "rtpengine_query0", Fn: cmd0("query")},
		{Name: "rtpengine_query_v", Fn: r.queryV},
		{Name: "set_rtpengine_set", Fn: func(m *engine.Msg, set int) int { return setSet(m, set) }},
		{Name: "set_rtpengine_set2", Fn: func(m *engine.Msg, set, _ int) int { return setSet(m, set) }},
		{Name: "start_recording", Fn: cmd0("start recording")},
		{Name: "stop_recording", Fn: cmd0("stop recording")},
		{Name: "block_dtmf", Fn: cmd("block DTMF")},
		{Name: "block_dtmf0", Fn: cmd0("block DTMF")},
		{Name: "unblock_dtmf", Fn: cmd("unblock DTMF")},
		{Name: "unblock_dtmf0", Fn: cmd0("unblock DTMF")},
		{Name: "block_media", Fn: cmd("block media")},
		{Name: "block_media0", Fn: cmd0("block media")},
		{Name: "unblock_media", Fn: cmd("unblock media")},
		{Name: "unblock_media0", Fn: cmd0("unblock media")},
		{Name: "silence_media", Fn: cmd("silence media")},
		{Name: "silence_media0", Fn: cmd0("silence media")},
		{Name: "unsilence_media", Fn: cmd("unsilence media")},
		{Name: "unsilence_media0", Fn: cmd0("unsilence media")},
		{Name: "play_media", Fn: cmd("play media")},
		{Name: "stop_media", Fn: cmd("stop media")},
		{Name: "stop_media0", Fn: cmd0("stop media")},
	}
}

// RPC: rtpengine.show (instances and their state) and rtpengine.ping.
func (r *RTPEngine) RPC() []engine.Command {
	return []engine.Command{
		{Name: "rtpengine.show", Help: "the rtpengine instances", Fn: func([]string) (any, error) {
			var out []map[string]any
			now := time.Now()
			for _, in := range r.c.insts {
				out = append(out, map[string]any{"url": in.url, "set": in.set, "weight": in.weight,
					"disabled": !in.enabled(now), "requests": in.sent.Load(), "timeouts": in.timeouts.Load()})
			}
			return out, nil
		}},
		{Name: "rtpengine.ping", Help: "ping every instance", Fn: func([]string) (any, error) {
			out := map[string]string{}
			for _, in := range r.c.insts {
				d, err := r.c.send(in, map[string]any{"command": "ping"})
				switch {
				case err != nil:
					out[in.url] = err.Error()
				default:
					res, _ := d["result"].(string)
					out[in.url] = res
					if res == "pong" {
						in.disabled.Store(0)
					}
				}
			}
			return out, nil
		}},
	}
}

// msgState is the module's state for one message: the set chosen by set_rtpengine_set.
type msgState struct{ set int }

func setSet(m *engine.Msg, set int) int {
	if set < 0 {
		return -1
	}
	m.SetModState(modName, &msgState{set: set})
	return 1
}

func setOf(m *engine.Msg) int {
	if st, ok := m.ModState(modName).(*msgState); ok {
		return st.set
	}
	return 0
}

// listKeys are the flags whose values rtpengine takes as lists ("replace-origin" → replace: [origin]).
var listKeys = map[string]string{"replace": "replace", "direction": "direction", "rtcp-mux": "rtcp-mux",
	"SDES": "SDES", "OSRTP": "OSRTP", "T38": "T.38", "T.38": "T.38", "received-from": "received-from"}

// transportProtos are the bare flags that set the transport protocol.
var transportProtos = map[string]bool{"RTP/AVP": true, "RTP/SAVP": true, "RTP/AVPF": true, "RTP/SAVPF": true,
	"UDP/TLS/RTP/SAVP": true, "UDP/TLS/RTP/SAVPF": true}

// buildCommand turns Kamailio's flags string into the ng dictionary, as Kamailio's rtpengine does:
// "key=value" sets a key (call-id, from-tag, to-tag, via-branch override the message's), "replace-X",
// "rtcp-mux-X", "SDES-X", "direction=X" fill lists, "codec-strip-X" and friends fill the codec dictionary,
// RTP/AVP... set transport-protocol, "internal"/"external" a direction, and any other word is a flag.
func buildCommand(m *engine.Msg, name, flags string) map[string]any {
	d := map[string]any{"command": name, "call-id": m.HeaderValue("call-id"), "from-tag": rawsip.TagOf(m.HeaderValue("from"))}
	if tt := rawsip.TagOf(m.HeaderValue("to")); tt != "" { // an answer, or a re-INVITE's offer: both sides are known
		d["to-tag"] = tt
	}
	appendList := func(k, v string) {
		l, _ := d[k].([]any)
		d[k] = append(l, v)
	}
	codec := map[string]any{}
	for _, f := range strings.Fields(flags) {
		k, v, hasVal := strings.Cut(f, "=")
		switch {
		case transportProtos[f]:
			d["transport-protocol"] = f
		case f == "internal" || f == "external":
			appendList("direction", f)
		case strings.HasPrefix(k, "codec-"):
			op, codecName, ok := strings.Cut(strings.TrimPrefix(k, "codec-"), "-")
			if hasVal {
				codecName, ok = v, true
			}
			if ok {
				l, _ := codec[op].([]any)
				codec[op] = append(l, codecName)
			}
		case hasVal && listKeys[k] != "":
			appendList(listKeys[k], v)
		case hasVal:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && (k == "delete-delay" || k == "repeat-times" ||
				k == "start-pos" || k == "duration" || k == "volume" || k == "trigger-end-time" || k == "TOS") {
				d[k] = n
			} else {
				d[k] = v
			}
		default:
			matched := false
			for p, key := range listKeys {
				if rest, ok := strings.CutPrefix(f, p+"-"); ok && rest != "" {
					appendList(key, rest)
					matched = true
					break
				}
			}
			if !matched {
				appendList("flags", f)
			}
		}
	}
	if len(codec) > 0 {
		d["codec"] = codec
	}
	return d
}

// command sends an ng command about the message's call. 1 ok, -1 error or timeout.
func (r *RTPEngine) command(m *engine.Msg, name, flags string) int {
	_, err := r.call(m, name, flags)
	if err != nil {
		return -1
	}
	return 1
}

func (r *RTPEngine) call(m *engine.Msg, name, flags string) (map[string]any, error) {
	if r.c == nil {
		return nil, errNoInst
	}
	cmd := buildCommand(m, name, flags)
	if name == "offer" || name == "answer" {
		cmd["sdp"] = string(m.Body())
	}
	d, _, err := r.c.do(setOf(m), cmd["call-id"].(string), cmd)
	if err != nil {
		r.logger().Info("rtpengine command failed", "command", name, "err", err, "call_id", cmd["call-id"])
	}
	return d, err
}

// offerAnswer is rtpengine_offer / rtpengine_answer: the message's SDP is sent to rtpengine and replaced
// by the one it returns. 1 done, -1 no SDP, an error or a timeout.
func (r *RTPEngine) offerAnswer(m *engine.Msg, name, flags string) int {
	if !hasSDP(m) {
		return -1
	}
	d, err := r.call(m, name, flags)
	if err != nil {
		return -1
	}
	sdp, ok := d["sdp"].(string)
	if !ok {
		r.logger().Info("rtpengine answered without SDP", "command", name, "call_id", m.HeaderValue("call-id"))
		return -1
	}
	replaceBody(m, sdp)
	return 1
}

func hasSDP(m *engine.Msg) bool {
	if len(m.Body()) == 0 {
		return false
	}
	ct := strings.ToLower(m.HeaderValue("content-type"))
	return ct == "" || strings.Contains(ct, "application/sdp") || strings.Contains(ct, "multipart/")
}

// replaceBody puts sdp in place of the body and sets Content-Length to its size.
func replaceBody(m *engine.Msg, sdp string) {
	m.AddEdit(m.Raw.Body, len(m.Buf), sdp)
	if i := m.Raw.Find(m.Buf, "content-length"); i >= 0 {
		h := m.Raw.Hdrs[i]
		m.AddEdit(int(h.VStart), int(h.VEnd), strconv.Itoa(len(sdp)))
	} else {
		m.AppendHeader("Content-Length: " + strconv.Itoa(len(sdp)))
	}
}

// manage is rtpengine_manage(flags), Kamailio's choice of command from the message: an INVITE (or UPDATE)
// with SDP is an offer; an ACK or PRACK with SDP, or a 183/2xx with SDP to an INVITE, an answer; a BYE or
// CANCEL, or a failure reply (>= 300) to an INVITE, a delete. 1 done, -1 nothing to do or an error.
func (r *RTPEngine) manage(m *engine.Msg, flags string) int {
	meth := m.Method()
	if m.IsRequest() {
		switch meth {
		case "INVITE", "UPDATE":
			if hasSDP(m) {
				return r.offerAnswer(m, "offer", flags)
			}
			return -1
		case "ACK", "PRACK":
			if hasSDP(m) {
				return r.offerAnswer(m, "answer", flags)
			}
			return -1
		case "BYE", "CANCEL":
			return r.command(m, "delete", flags)
		}
		return -1
	}
	code := m.StatusCode()
	if meth != "INVITE" && meth != "UPDATE" {
		return -1
	}
	switch {
	case code >= 300:
		return r.command(m, "delete", flags)
	case (code == 183 || code >= 200) && hasSDP(m):
		return r.offerAnswer(m, "answer", flags)
	}
	return -1
}

// queryV is rtpengine_query_v(fmt, "$var(x)"): the query result as JSON ("j") stored in a variable.
func (r *RTPEngine) queryV(m *engine.Msg, format, spv string) int {
	if format != "j" && format != "J" {
		return -1
	}
	d, err := r.call(m, "query", "")
	if err != nil {
		return -1
	}
	b, err := json.Marshal(d)
	if err != nil || m.E == nil {
		return -1
	}
	name, arg, ok := engine.ParsePVSpec(spv)
	if !ok {
		return -1
	}
	pv, ok := m.E.LookupPV(name)
	if !ok || pv.Set == nil {
		return -1
	}
	if pv.Set(m, arg, engine.StrVal(string(b))) != nil {
		return -1
	}
	return 1
}
