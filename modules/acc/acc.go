// Package acc writes accounting records (Kamailio's acc module): a record per transaction the script
// accounts (acc_log_request, acc_request, or the log_flag / failed_transaction_flag set on the request when
// its final reply goes upstream) and a CDR per call from the dialog module (start, end, duration). Records
// go to the log, to a file of JSON lines and/or to a Redis stream. The file and Redis writers run on their
// own goroutines behind a bounded queue: a route worker never waits on them, a record that cannot be
// written yet (the disk is full, Redis is restarting) is retried, and what does not fit in the queue is
// dropped and counted (acc.stats, the acc_dropped gauge).
package acc

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/engine/rawsip"
	"github.com/siplua/siplua/modules/dialog"
	"github.com/siplua/siplua/modules/pv"
)

const modName = "acc"

func init() {
	engine.Register(engine.Module{Name: modName, After: []string{"dialog"}, New: func() engine.Instance { return New() }})
}

// New returns the module with its defaults (Kamailio's where it has them).
func New() *Acc {
	return &Acc{
		Log: true, LogFlag: -1, FailedTransactionFlag: -1, Buffer: 10000, RetryInterval: 500,
		RedisURL: "redis://127.0.0.1:6379/0", RedisTimeout: 500, RedisMaxLen: 0,
	}
}

// Acc holds the parameters.
type Acc struct {
	// Log writes records to the log (Kamailio's syslog output), at info level.
	Log bool `toml:"log"`
	// JSONFile appends one JSON object per line to this file ("" = off).
	JSONFile string `toml:"json_file"`
	// RedisStream adds each record to this Redis stream with XADD ("" = off).
	RedisStream  string `toml:"redis_stream"`
	RedisURL     string `toml:"redis_url"`
	RedisTimeout int    `toml:"redis_timeout"` // milliseconds per XADD
	// RedisMaxLen caps the stream (XADD MAXLEN ~ n); 0 = no cap.
	RedisMaxLen int `toml:"redis_maxlen"`
	// LogFlag: a request with this flag is accounted when its transaction's final reply (< 300) goes
	// upstream (Kamailio log_flag); -1 = off.
	LogFlag int `toml:"log_flag"`
	// FailedTransactionFlag: a request with this flag is accounted when its transaction fails (a final
	// reply >= 300 upstream; Kamailio failed_transaction_flag); -1 = off.
	FailedTransactionFlag int `toml:"failed_transaction_flag"`
	// LogExtra adds fields to transaction records, Kamailio's format: "name=$pv;name2=$pv2".
	LogExtra string `toml:"log_extra"`
	// CdrEnable writes a CDR when a dialog ends (Kamailio cdr_enable; needs [modules.dialog]).
	CdrEnable bool `toml:"cdr_enable"`
	// CdrExtra adds fields to CDRs from the dialog's variables: "name=$dlg_var(x);...".
	CdrExtra string `toml:"cdr_extra"`
	// Buffer bounds the records waiting for each output (file, Redis).
	Buffer int `toml:"buffer"`
	// RetryInterval: how long an output that failed waits before trying the same record again (ms).
	RetryInterval int `toml:"retry_interval"`

	log      *slog.Logger
	extra    []extraField
	cdrExtra []extraField
	outs     []*output
	dropped  atomic.Int64
	written  atomic.Int64
}

type extraField struct{ name, spec, pvName, pvArg string }

func parseExtra(param, s string) ([]extraField, error) {
	var out []extraField
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, spec, ok := strings.Cut(part, "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		if !ok || name == "" {
			return nil, fmt.Errorf("%s: expected name=$pv, got %q", param, part)
		}
		n, a, ok := pv.ParseSpec(spec)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not a pseudo-variable", param, spec)
		}
		out = append(out, extraField{name: name, spec: spec, pvName: n, pvArg: a})
	}
	return out, nil
}

// Validate checks the parameters.
func (a *Acc) Validate() error {
	if a.LogFlag < -1 || a.LogFlag > 63 {
		return fmt.Errorf("log_flag: expected -1 (off) or a flag 0..63, got %d", a.LogFlag)
	}
	if a.FailedTransactionFlag < -1 || a.FailedTransactionFlag > 63 {
		return fmt.Errorf("failed_transaction_flag: expected -1 (off) or a flag 0..63, got %d", a.FailedTransactionFlag)
	}
	if a.Buffer < 1 || a.Buffer > 10_000_000 {
		return fmt.Errorf("buffer: expected 1..10000000 records, got %d", a.Buffer)
	}
	if a.RetryInterval < 1 {
		return fmt.Errorf("retry_interval: expected >= 1 ms, got %d", a.RetryInterval)
	}
	if a.RedisStream != "" {
		if u, err := url.Parse(a.RedisURL); err != nil || u.Host == "" {
			return fmt.Errorf("redis_url: expected redis://host:port[/db], got %q", a.RedisURL)
		}
		if a.RedisTimeout < 1 {
			return fmt.Errorf("redis_timeout: expected >= 1 ms, got %d", a.RedisTimeout)
		}
	}
	if a.RedisMaxLen < 0 {
		return fmt.Errorf("redis_maxlen: expected >= 0, got %d", a.RedisMaxLen)
	}
	if _, err := parseExtra("log_extra", a.LogExtra); err != nil {
		return err
	}
	cx, err := parseExtra("cdr_extra", a.CdrExtra)
	if err != nil {
		return err
	}
	for _, f := range cx {
		if f.pvName != "dlg_var" {
			return fmt.Errorf("cdr_extra: %s: only $dlg_var(name) is known when a dialog ends, got %q", f.name, f.spec)
		}
	}
	return nil
}

// Start opens the outputs and subscribes to the dialog module for CDRs.
func (a *Acc) Start(env *engine.Env) error {
	a.log = env.Log
	a.extra, _ = parseExtra("log_extra", a.LogExtra)
	a.cdrExtra, _ = parseExtra("cdr_extra", a.CdrExtra)
	if a.JSONFile != "" {
		a.outs = append(a.outs, a.newOutput("json_file", &fileSink{path: a.JSONFile}))
	}
	if a.RedisStream != "" {
		s, err := newRedisSink(a)
		if err != nil {
			return fmt.Errorf("acc: redis_stream: %w", err)
		}
		a.outs = append(a.outs, a.newOutput("redis_stream", s))
	}
	if a.CdrEnable {
		inst, ok := env.Engine.Module("dialog")
		if !ok {
			return fmt.Errorf("acc: cdr_enable needs [modules.dialog]")
		}
		inst.(*dialog.Dialog).Subscribe(a.onDialog)
	}
	return nil
}

// Stop writes what the outputs still hold (each for at most a second) and closes them.
func (a *Acc) Stop() error {
	for _, o := range a.outs {
		o.close()
	}
	return nil
}

func (a *Acc) logger() *slog.Logger {
	if a.log == nil {
		return slog.Default()
	}
	return a.log
}

// Exports: KSR.acc.*.
func (a *Acc) Exports() []engine.Export {
	return []engine.Export{
		{Name: "acc_log_request", Fn: func(m *engine.Msg, comment string) int { return a.request(m, comment, "", true, false) }},
		{Name: "acc_request", Fn: func(m *engine.Msg, comment, table string) int { return a.request(m, comment, table, false, true) }},
		{Name: "acc_db_request", Fn: func(m *engine.Msg, comment, table string) int { return a.request(m, comment, table, false, true) }},
	}
}

// Gauges: acc_records (written) and acc_dropped (lost because an output's buffer was full).
func (a *Acc) Gauges() []engine.Gauge {
	return []engine.Gauge{
		{Name: "acc_records", Help: "Accounting records written by the file and Redis outputs.", Value: func() float64 { return float64(a.written.Load()) }},
		{Name: "acc_dropped", Help: "Accounting records dropped because an output's buffer was full.", Value: func() float64 { return float64(a.dropped.Load()) }},
	}
}

// RPC: acc.stats.
func (a *Acc) RPC() []engine.Command {
	return []engine.Command{{Name: "acc.stats", Help: "records written, dropped and queued per output", Fn: func([]string) (any, error) {
		return a.Stats(), nil
	}}}
}

// Stats are the counters of acc.stats.
func (a *Acc) Stats() map[string]int64 {
	st := map[string]int64{"written": a.written.Load(), "dropped": a.dropped.Load()}
	for _, o := range a.outs {
		st["queued_"+o.name] = int64(len(o.q))
	}
	return st
}

// Record is one accounting record: fields in order (the log line and the JSON object keep it).
type Record struct{ keys, vals []string }

func (r *Record) add(k, v string) { r.keys, r.vals = append(r.keys, k), append(r.vals, v) }

// MarshalJSON writes the fields as one object, in order.
func (r *Record) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+32*len(r.keys))
	b = append(b, '{')
	for i, k := range r.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, r.vals[i])
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string: quotes, backslashes and control characters escaped; a
// string that is not valid UTF-8 goes through encoding/json (which replaces the bad bytes).
func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// logLine is Kamailio's acc log format: "name=value;name=value".
func (r *Record) logLine() string {
	var b strings.Builder
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(r.vals[i])
	}
	return b.String()
}

// parseComment splits acc's comment "404 Not here" into code and reason; a comment without a code is
// the reason alone (code 0), as Kamailio's acc_get_param does.
func parseComment(c string) (int, string) {
	c = strings.TrimSpace(c)
	if len(c) >= 3 {
		if n, err := strconv.Atoi(c[:3]); err == nil && (len(c) == 3 || c[3] == ' ') {
			return n, strings.TrimSpace(c[3:])
		}
	}
	return 0, c
}

// txRecord is the record of a request (Kamailio's core acc fields, then log_extra).
func (a *Acc) txRecord(kind string, m *engine.Msg, code int, reason, toTag string) *Record {
	r := &Record{}
	r.add("type", kind)
	r.add("time", time.Now().UTC().Format(time.RFC3339Nano))
	r.add("method", m.Method())
	r.add("from_tag", rawsip.TagOf(m.HeaderValue("from")))
	if toTag == "" {
		toTag = rawsip.TagOf(m.HeaderValue("to"))
	}
	r.add("to_tag", toTag)
	r.add("callid", m.HeaderValue("call-id"))
	r.add("sip_code", strconv.Itoa(code))
	r.add("sip_reason", reason)
	for _, f := range a.extra {
		v := engine.Value{}
		if m.E != nil {
			if cl, ok := m.E.LookupPV(f.pvName); ok && cl.Get != nil {
				v = cl.Get(m, f.pvArg)
			}
		}
		r.add(f.name, v.String())
	}
	return r
}

// request is acc_log_request / acc_request: a record for the current request now. 1 done, -1 no
// request.
func (a *Acc) request(m *engine.Msg, comment, table string, toLog, toOutputs bool) int {
	if !m.IsRequest() {
		return -1
	}
	code, reason := parseComment(comment)
	r := a.txRecord("request", m, code, reason, "")
	if table != "" {
		r.add("table", table)
	}
	if toLog {
		a.logger().Info("ACC: request accounted: " + r.logLine())
	}
	if toOutputs {
		a.emit(r)
	}
	return 1
}

// TxFinal (engine.TxFinalHook): a request with log_flag whose transaction answered (< 300), or with
// failed_transaction_flag whose transaction failed, is accounted with the reply's code and To tag.
func (a *Acc) TxFinal(req *engine.Msg, code int, reply []byte) {
	flag := a.LogFlag
	kind := "transaction answered"
	if code >= 300 {
		flag, kind = a.FailedTransactionFlag, "transaction failed"
	}
	if flag < 0 || req.Flags&(1<<uint(flag)) == 0 {
		return
	}
	var rm rawsip.Msg
	reason, toTag := "", ""
	if rawsip.Scan(reply, &rm) == nil {
		if i := rm.Find(reply, "to"); i >= 0 {
			toTag = rawsip.TagOf(string(rm.Hdrs[i].Value(reply)))
		}
		if line := reply[:rm.FirstLineEnd]; len(line) > 12 {
			reason = strings.TrimSpace(string(line[12:]))
		}
	}
	t := "answered"
	if code >= 300 {
		t = "failed"
	}
	r := a.txRecord(t, req, code, reason, toTag)
	a.emit(r)
	if a.Log {
		a.logger().Info("ACC: " + kind + ": " + r.logLine())
	}
}

// onDialog writes the CDR of an ended dialog.
func (a *Acc) onDialog(ev dialog.Event) {
	if ev.Kind != dialog.EvEnded {
		return
	}
	in := ev.Dlg
	start := time.Unix(0, in.StartNS)
	end := start.Add(ev.Duration)
	r := &Record{}
	r.add("type", "cdr")
	r.add("callid", in.CallID)
	r.add("from_tag", in.FromTag)
	r.add("to_tag", in.ToTag)
	r.add("from_uri", in.FromURI)
	r.add("to_uri", in.ToURI)
	r.add("start_time", start.UTC().Format(time.RFC3339Nano))
	r.add("end_time", end.UTC().Format(time.RFC3339Nano))
	r.add("duration", strconv.FormatFloat(ev.Duration.Seconds(), 'f', 3, 64))
	r.add("end_reason", ev.Reason)
	for _, f := range a.cdrExtra {
		r.add(f.name, in.Vars[f.pvArg])
	}
	a.emit(r)
	if a.Log {
		a.logger().Info("ACC: call ended: " + r.logLine())
	}
}

// emit queues a record for the file and Redis outputs.
func (a *Acc) emit(r *Record) {
	if len(a.outs) == 0 {
		return
	}
	for _, o := range a.outs {
		o.put(r)
	}
}
