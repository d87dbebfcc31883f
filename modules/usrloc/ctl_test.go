package usrloc_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine/ctl"
	"github.com/siplua/siplua/engine/metrics"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/usrloc"
)

const script = `function ksr_request_route() KSR.sl.sl_send_reply(200, "ok") end`

// startUL runs an engine with usrloc and its control socket; it returns the proxy and the socket path.
func startUL(t *testing.T, params string) (*enginetest.Proxy, string) {
	t.Helper()
	p := enginetest.Start(t, "[core]\nworkers = 1\n[modules.sl]\n[modules.usrloc]\n"+params, script)
	dir, err := os.MkdirTemp("", "ul") // short: unix socket paths are limited to ~104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := ctl.Listen(filepath.Join(dir, "s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterModules(p.E.Config().Mods)
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return p, s.Path()
}

// call runs a command over the socket and returns its result as compact JSON, or the error message.
func call(t *testing.T, sock, method string, args ...string) string {
	t.Helper()
	_, res, err := ctl.Call(sock, method, args, 5*time.Second)
	if err != nil {
		var ce *ctl.Error
		if errors.As(err, &ce) {
			return fmt.Sprintf("error %d: %s", ce.Code, ce.Message)
		}
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(res, &v); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

// times hides the values that depend on the clock.
var times = regexp.MustCompile(`"(Expires|Last-Modified)":\d+`)

func stable(s string) string { return times.ReplaceAllString(s, `"$1":T`) }

func TestCommands(t *testing.T) {
	_, sock := startUL(t, "nat_bflag = 6\n")
	contact := func(addr string, q float64, path, cflags string, methods uint64) string {
		p, nat := `"[not set]"`, cflags == "64"
		if path != "" {
			p = `"` + path + `"`
		}
		return fmt.Sprintf(`{"Contact":{"Address":"%s","CFlags":%s,"CSeq":1,"Call-ID":"dfjrewr12386fd6-343@kamailio.mi","Expires":T,"Flags":0,"Instance":"[not set]","Last-Modified":T,"Methods":%d,"NAT":%v,"Path":%s,"Q":%v,"Received":"[not set]","Reg-Id":0,"Socket":"[not set]","User-Agent":"SIP Router MI Server"}}`,
			addr, cflags, methods, nat, p, q)
	}
	const all = 4294967295
	for _, tc := range []struct {
		name   string
		method string
		args   []string
		want   string
	}{
		{"lookup before add", "ul.lookup", []string{"alice@example.org"}, "error 500: AOR not found in location table"},
		{"add kamailio order", "ul.add", []string{"location", "alice@example.org", "sip:alice@10.0.0.1:5062", "600", "0.5", "<sip:edge;lr>", "0", "64", "0"}, `"ok"`},
		{"add short", "ul.add", []string{"alice@example.org", "sip:alice@10.0.0.2"}, `"ok"`},
		{"add short bob", "ul.add", []string{"bob@example.org", "sip:bob@10.0.0.3", "60", "1"}, `"ok"`},
		{"add other table", "ul.add", []string{"aliases", "alice@example.org", "sip:x@y", "60", "-1", "0", "0", "0", "5"}, `"ok"`},
		{"lookup short", "ul.lookup", []string{"alice@example.org"},
			`{"AoR":"alice@example.org","Contacts":[` + contact("sip:alice@10.0.0.1:5062", 0.5, "<sip:edge;lr>", "64", all) + `,` + contact("sip:alice@10.0.0.2", -1, "", "0", all) + `]}`},
		{"lookup kamailio order", "ul.lookup", []string{"aliases", "alice@example.org"},
			`{"AoR":"alice@example.org","Contacts":[` + contact("sip:x@y", -1, "", "0", 5) + `]}`},
		{"re-add updates", "ul.add", []string{"location", "alice@example.org", "sip:alice@10.0.0.2", "600", "0.1", "0", "0", "0", "0"}, `"ok"`},
		{"dump filter", "ul.dump", []string{"bob"},
			`{"Domains":[{"AoRs":[{"Info":{"AoR":"bob@example.org","Contacts":[` + contact("sip:bob@10.0.0.3", 1, "", "0", all) + `]}}],"Domain":"location","Stats":{"Contacts":1,"Records":1}}]}`},
		{"dump brief", "ul.dump", []string{"brief"},
			`{"Domains":[{"AoRs":[{"AoR":"alice@example.org"}],"Domain":"aliases","Stats":{"Contacts":0,"Records":1}},{"AoRs":[{"AoR":"alice@example.org"},{"AoR":"bob@example.org"}],"Domain":"location","Stats":{"Contacts":0,"Records":2}}]}`},
		{"rm contact short", "ul.rm", []string{"alice@example.org", "sip:alice@10.0.0.1:5062"}, `{"AoR":"alice@example.org","Removed":true}`},
		{"lookup after rm contact", "ul.lookup", []string{"location", "alice@example.org"},
			`{"AoR":"alice@example.org","Contacts":[` + contact("sip:alice@10.0.0.2", 0.1, "", "0", all) + `]}`},
		{"rm contact not found", "ul.rm_contact", []string{"location", "alice@example.org", "sip:nope"}, "error 500: Contact not found"},
		{"rm contact aor not found", "ul.rm_contact", []string{"location", "nobody", "sip:nope"}, "error 500: AOR not found"},
		{"rm kamailio order", "ul.rm", []string{"location", "alice@example.org"}, `{"AoR":"alice@example.org","Removed":true}`},
		{"rm unknown aor is no error", "ul.rm", []string{"location", "alice@example.org"}, `{"AoR":"alice@example.org","Removed":false}`},
		{"rm short aor", "ul.rm", []string{"bob@example.org"}, `{"AoR":"bob@example.org","Removed":true}`},
		{"rm three args", "ul.rm", []string{"aliases", "alice@example.org", "sip:x@y"}, `{"AoR":"alice@example.org","Removed":true}`},
		{"dump empty", "ul.dump", nil, `{"Domains":[{"AoRs":[],"Domain":"location","Stats":{"Contacts":0,"Records":0}}]}`},
		{"lookup no args", "ul.lookup", nil, "error 500: Not enough parameters (table and AOR to lookup)"},
		{"add wrong count", "ul.add", []string{"a", "sip:b", "1", "1", "x"}, "error 500: Not enough parameters or wrong format: ul.add TABLE AOR CONTACT EXPIRES Q PATH FLAGS CFLAGS METHODS, or ul.add AOR CONTACT [EXPIRES [Q]]"},
		{"add bad expires", "ul.add", []string{"a", "sip:b", "soon"}, `error 500: ul.add: expires: expected seconds, got "soon"`},
		{"add permanent", "ul.add", []string{"a", "sip:b", "0"}, "error 500: ul.add: expires: 0 (a permanent contact) is not supported, give seconds"},
		{"add bad q", "ul.add", []string{"a", "sip:b", "60", "2"}, `error 500: ul.add: q: expected 0..1 or -1 (none), got "2"`},
		{"add bad cflags", "ul.add", []string{"location", "a", "sip:b", "60", "1", "0", "0", "x", "0"}, `error 500: ul.add: cflags: expected an unsigned 64-bit number, got "x"`},
		{"add not a uri", "ul.add", []string{"a", "b"}, `error 500: ul.add: expected an AOR and a contact URI, got "a" and "b"`},
		{"dump too many", "ul.dump", []string{"a", "b"}, "error 500: ul.dump takes [brief] [FILTER]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stable(call(t, sock, tc.method, tc.args...)); got != tc.want {
				t.Fatalf("%s %v\ngot  %s\nwant %s", tc.method, tc.args, got, tc.want)
			}
		})
	}
}

// The expires shown is the time left.
func TestCommandExpires(t *testing.T) {
	_, sock := startUL(t, "")
	call(t, sock, "ul.add", "u@h", "sip:u@h", "120")
	got := call(t, sock, "ul.lookup", "u@h")
	m := regexp.MustCompile(`"Expires":(\d+)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("lookup: %s", got)
	}
	if left, _ := strconv.Atoi(m[1]); left < 110 || left > 120 {
		t.Fatalf("Expires = %d seconds left, want about 120", left)
	}
}

// Bindings survive a restart of the proxy through the snapshot written at shutdown.
func TestRestartKeepsBindings(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "ul.snapshot")
	params := fmt.Sprintf("snapshot_file = %q\n", snap)
	t.Run("first run", func(t *testing.T) {
		_, sock := startUL(t, params)
		call(t, sock, "ul.add", "alice@example.org", "sip:alice@10.0.0.1", "300")
		call(t, sock, "ul.add", "location", "bob@example.org", "sip:bob@10.0.0.2", "300", "0.7", "<sip:p;lr>", "1", "2", "3")
	}) // the engine stops here: usrloc writes the snapshot
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("no snapshot after shutdown: %v", err)
	}
	_, sock := startUL(t, params)
	got := stable(call(t, sock, "ul.lookup", "bob@example.org"))
	want := `{"AoR":"bob@example.org","Contacts":[{"Contact":{"Address":"sip:bob@10.0.0.2","CFlags":2,"CSeq":1,"Call-ID":"dfjrewr12386fd6-343@kamailio.mi","Expires":T,"Flags":1,"Instance":"[not set]","Last-Modified":T,"Methods":3,"NAT":false,"Path":"<sip:p;lr>","Q":0.7,"Received":"[not set]","Reg-Id":0,"Socket":"[not set]","User-Agent":"SIP Router MI Server"}}]}`
	if got != want {
		t.Fatalf("after restart\ngot  %s\nwant %s", got, want)
	}
	if got := call(t, sock, "ul.lookup", "alice@example.org"); !strings.Contains(got, "sip:alice@10.0.0.1") {
		t.Fatalf("alice after restart: %s", got)
	}
}

// The default snapshot file is usrloc.snapshot next to the configuration file.
func TestDefaultSnapshotFile(t *testing.T) {
	if u := usrloc.New(); u.SnapshotFile != "usrloc.snapshot" {
		t.Fatalf("default snapshot_file = %q", u.SnapshotFile)
	}
	p, _ := startUL(t, "")
	want := "file=" + filepath.Join(p.Dir, "usrloc.snapshot")
	if !strings.Contains(p.Log.String(), want) {
		t.Fatalf("log does not show the snapshot at %s:\n%s", want, p.Log.String())
	}
}

// usrloc_aors and usrloc_contacts are in /metrics and follow the table.
func TestGauges(t *testing.T) {
	p, sock := startUL(t, "")
	srv := httptest.NewServer(metrics.Handler(p.E, "test", false))
	defer srv.Close()
	scrape := func() (aors, contacts string) {
		t.Helper()
		res, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		a := regexp.MustCompile(`(?m)^siplua_usrloc_aors (\S+)$`).FindSubmatch(body)
		c := regexp.MustCompile(`(?m)^siplua_usrloc_contacts (\S+)$`).FindSubmatch(body)
		if a == nil || c == nil {
			t.Fatalf("gauges missing from /metrics:\n%s", body)
		}
		return string(a[1]), string(c[1])
	}
	for _, step := range []struct {
		method     string
		args       []string
		aors, cnts string
	}{
		{"", nil, "0", "0"},
		{"ul.add", []string{"a@h", "sip:a1@h"}, "1", "1"},
		{"ul.add", []string{"a@h", "sip:a2@h"}, "1", "2"},
		{"ul.add", []string{"b@h", "sip:b@h"}, "2", "3"},
		{"ul.add", []string{"a@h", "sip:a2@h", "30"}, "2", "3"}, // an update
		{"ul.rm", []string{"a@h"}, "1", "1"},
		{"ul.rm", []string{"b@h", "sip:b@h"}, "0", "0"},
	} {
		if step.method != "" {
			call(t, sock, step.method, step.args...)
		}
		if a, c := scrape(); a != step.aors || c != step.cnts {
			t.Fatalf("after %s %v: usrloc_aors %s, usrloc_contacts %s; want %s, %s", step.method, step.args, a, c, step.aors, step.cnts)
		}
	}
}
