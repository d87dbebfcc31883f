package acc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/acc"
	_ "github.com/siplua/siplua/modules/all"
)

const baseConfig = "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.dialog]\n"

// callScript relays calls, tracks them as dialogs (with a dialog variable for cdr_extra) and sets flag 1
// (log_flag) and 2 (failed_transaction_flag) on the INVITE.
const callScript = `
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			KSR.tm.t_relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_OPTIONS() then
		KSR.acc.acc_request("200 OK", "acc")
		KSR.acc.acc_log_request("404 Not here")
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		KSR.dialog.dlg_manage()
		KSR.pv.sets("$dlg_var(account)", "acme")
		KSR.setflag(1)
		KSR.setflag(2)
		if UAS ~= "" then KSR.setdsturi(UAS) end
	end
	KSR.tm.t_relay()
end
`

func readRecords(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]string
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func byType(rs []map[string]string, typ string) []map[string]string {
	var out []map[string]string
	for _, r := range rs {
		if r["type"] == typ {
			out = append(out, r)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestAccCDRs: 100 SIPp calls of 300 ms through siplua give 100 CDR lines with their durations and the
// dialog variable, and 100 "answered" transaction records with the log_extra fields.
func TestAccCDRs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acc.json")
	cfg := baseConfig + "[modules.acc]\njson_file = \"" + path + "\"\ncdr_enable = true\nlog_flag = 1\n" +
		"failed_transaction_flag = 2\nlog_extra = \"src_ip=$si;callee=$rU\"\ncdr_extra = \"account=$dlg_var(account)\"\n"
	p := enginetest.Start(t, cfg, "UAS = ''\n"+callScript)
	const n = 100
	uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/call-uas.xml", "-m", strconv.Itoa(n))
	uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/call-uac-300ms.xml", p.UDP.String(), "-m", strconv.Itoa(n),
		"-r", "50", "-l", "40", "-key", "target", uas.Addr(), "-inf", enginetest.SIPpInjection(t, "bob"))
	if err := uac.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var cdrs []map[string]string
	waitFor(t, "100 CDRs", 5*time.Second, func() bool {
		cdrs = byType(readRecords(t, path), "cdr")
		return len(cdrs) >= n
	})
	recs := readRecords(t, path)
	if len(cdrs) != n {
		t.Fatalf("%d CDRs, want %d", len(cdrs), n)
	}
	seen := map[string]bool{}
	for _, c := range cdrs {
		d, err := strconv.ParseFloat(c["duration"], 64)
		if err != nil || d < 0.25 || d > 5 {
			t.Errorf("CDR duration %q, want about 0.3 s: %v", c["duration"], c)
		}
		start, err1 := time.Parse(time.RFC3339Nano, c["start_time"])
		end, err2 := time.Parse(time.RFC3339Nano, c["end_time"])
		if err1 != nil || err2 != nil || end.Sub(start).Seconds()-d > 0.001 {
			t.Errorf("CDR start/end %q %q do not match duration %s", c["start_time"], c["end_time"], c["duration"])
		}
		if c["account"] != "acme" || c["end_reason"] != "bye" || c["to_tag"] == "" || c["from_tag"] == "" {
			t.Errorf("CDR fields: %v", c)
		}
		seen[c["callid"]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct Call-IDs in the CDRs, want %d", len(seen), n)
	}
	ans := byType(recs, "answered")
	if len(ans) != n {
		t.Fatalf("%d answered records, want %d", len(ans), n)
	}
	if a := ans[0]; a["method"] != "INVITE" || a["sip_code"] != "200" || a["src_ip"] != "127.0.0.1" || a["callee"] != "bob" || a["to_tag"] == "" {
		t.Errorf("answered record: %v", a)
	}
	if f := byType(recs, "failed"); len(f) != 0 {
		t.Errorf("failed records for answered calls: %v", f)
	}
}

// TestAccFailedCalls: calls answered 486 are accounted with their code (failed_transaction_flag), and no
// CDR is written for them.
func TestAccFailedCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acc.json")
	uas := enginetest.StartUAS(t, false, func(string) int { return 486 })
	cfg := baseConfig + "[modules.acc]\njson_file = \"" + path + "\"\ncdr_enable = true\nlog_flag = 1\nfailed_transaction_flag = 2\n"
	p := enginetest.Start(t, cfg, "UAS = 'sip:"+uas.Addr.String()+"'\n"+callScript)
	const n = 10
	c := p.UDPClient(t)
	for i := 0; i < n; i++ {
		c.Send(c.Request("INVITE", "sip:bob@example.com", "Contact: <sip:alice@"+c.Addr.String()+">"))
		if got := string(c.RecvFinal(5 * time.Second)); !strings.HasPrefix(got, "SIP/2.0 486") {
			t.Fatalf("final reply %q", got)
		}
	}
	var failed []map[string]string
	waitFor(t, "failed records", 5*time.Second, func() bool {
		failed = byType(readRecords(t, path), "failed")
		return len(failed) >= n
	})
	for _, f := range failed {
		if f["sip_code"] != "486" || f["sip_reason"] != "Busy Here" || f["method"] != "INVITE" || f["to_tag"] != "uas" {
			t.Errorf("failed record: %v", f)
		}
	}
	if recs := readRecords(t, path); len(recs) != n {
		t.Errorf("%d records, want %d (no CDR, no answered record): %v", len(recs), n, recs)
	}
}

// TestAccRequestAndLog: acc_request goes to the outputs with its table, acc_log_request to the log in
// Kamailio's name=value format.
func TestAccRequestAndLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acc.json")
	p := enginetest.Start(t, baseConfig+"[modules.acc]\njson_file = \""+path+"\"\n", "UAS = ''\n"+callScript)
	c := p.UDPClient(t)
	c.Send(c.Request("OPTIONS", "sip:bob@example.com"))
	if r := c.RecvResponse(3 * time.Second); r.StatusCode != 404 {
		t.Fatalf("reply %d", r.StatusCode)
	}
	var recs []map[string]string
	waitFor(t, "the record", 3*time.Second, func() bool { recs = readRecords(t, path); return len(recs) == 1 })
	if r := recs[0]; r["type"] != "request" || r["method"] != "OPTIONS" || r["sip_code"] != "200" || r["sip_reason"] != "OK" || r["table"] != "acc" {
		t.Errorf("record: %v", r)
	}
	if !strings.Contains(p.Log.String(), "ACC: request accounted: type=request;") || !strings.Contains(p.Log.String(), "method=OPTIONS;") ||
		!strings.Contains(p.Log.String(), "sip_code=404;sip_reason=Not here") {
		t.Errorf("no acc_log_request line in the log:\n%s", p.Log.String())
	}
}

// TestAccRedisOutage: records written while Redis is down reach the stream once it is back (nothing
// lost while the buffer has room); with a buffer of 5, the rest is dropped and counted.
func TestAccRedisOutage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		buffer      int
		sent        int
		wantDropped bool
	}{
		{"buffer holds the outage", 1000, 30, false},
		{"small buffer drops and counts", 5, 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := enginetest.StartRedis(t)
			cfg := baseConfig + "[modules.acc]\nlog = false\nredis_stream = \"acc\"\nredis_url = \"" + r.URL() +
				"\"\nretry_interval = 50\nbuffer = " + strconv.Itoa(tc.buffer) + "\n"
			p := enginetest.Start(t, cfg, "UAS = ''\n"+callScript)
			inst, _ := p.E.Module("acc")
			a := inst.(*acc.Acc)
			c := p.UDPClient(t)
			options := func() {
				c.Send(c.Request("OPTIONS", "sip:bob@example.com"))
				if r := c.RecvResponse(3 * time.Second); r.StatusCode != 404 {
					t.Fatalf("reply %d", r.StatusCode)
				}
			}
			options()
			waitFor(t, "the first record", 5*time.Second, func() bool { return a.Stats()["written"] == 1 })
			r.Kill()
			for i := 0; i < tc.sent; i++ {
				options()
			}
			time.Sleep(200 * time.Millisecond)
			r.Start()
			rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			// the first record was lost with the killed server (no persistence); count the ones written after
			want := int64(tc.sent)
			if tc.wantDropped {
				want = int64(tc.buffer) + 1 // the queue plus the record being retried
			}
			waitFor(t, "the records in the stream", 10*time.Second, func() bool {
				n, _ := rc.Do(context.Background(), rc.B().Xlen().Key("acc").Build()).AsInt64()
				return n >= want
			})
			st := a.Stats()
			if tc.wantDropped && st["dropped"] < int64(tc.sent)-want {
				t.Errorf("dropped = %d, want >= %d", st["dropped"], int64(tc.sent)-want)
			}
			if !tc.wantDropped && st["dropped"] != 0 {
				t.Errorf("dropped = %d, want 0", st["dropped"])
			}
			fields, err := rc.Do(context.Background(), rc.B().Xrange().Key("acc").Start("-").End("+").Count(1).Build()).ToArray()
			if err != nil || len(fields) != 1 {
				t.Fatalf("XRANGE: %v %v", fields, err)
			}
			ent, _ := fields[0].ToArray()
			kv, _ := ent[1].AsStrSlice()
			if len(kv) < 4 || kv[0] != "type" || kv[1] != "request" {
				t.Errorf("stream entry fields: %v", kv)
			}
		})
	}
}
