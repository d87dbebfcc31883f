package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/siplua/siplua/engine"
)

// maxRows bounds the rows a table page renders: a location table of a million contacts is searched, not
// listed.
const maxRows = 500

func (h *handler) pageData(path string, q url.Values) (*page, bool) {
	p := &page{Path: path}
	if m := q.Get("ok"); m != "" {
		p.Flash = m
	} else if m := q.Get("err"); m != "" {
		p.Flash, p.FlashErr = m, true
	}
	switch path {
	case "/":
		p.Name, p.Title, p.Data = "overview", "Overview", h.overview()
	case "/script":
		p.Name, p.Title, p.Data = "script", "Script", h.script()
	case "/registrations":
		if !h.has("ul.dump") {
			return nil, false
		}
		p.Name, p.Title, p.Data = "registrations", "Registrations", h.registrations(strings.TrimSpace(q.Get("aor")))
	case "/dispatcher":
		if !h.has("dispatcher.list") {
			return nil, false
		}
		p.Name, p.Title, p.Data = "dispatcher", "Dispatcher", h.dispatcher()
	case "/htable":
		if !h.has("htable.stats") {
			return nil, false
		}
		p.Name, p.Title, p.Data = "htable", "Hash tables", h.htable(q.Get("table"), q.Get("q"))
	case "/dialogs":
		if !h.has("dlg.list") {
			return nil, false
		}
		p.Name, p.Title, p.Data = "dialogs", "Dialogs", h.dialogs()
	default:
		return nil, false
	}
	return p, true
}

// decode turns a command's result into dst through JSON: the page reads the same shape `siplua ctl`
// prints, without importing the module's types.
func decode(v any, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

type kv struct {
	Name  string
	Value any
}

type overviewData struct {
	Uptime           time.Duration
	Started          time.Time
	Generation       uint64
	GenerationsLive  int
	Workers, Busy    int
	Queue, QueueCap  int
	Listeners        []string
	Counters         []kv
	Methods          []kv
	Replies          []kv
	Gauges           []kv
	Transactions     []kv // tm_* gauges; the panel is absent without them
	AvgRoute         time.Duration
	RouteErrorsTotal uint64
}

func (h *handler) overview() overviewData {
	e := h.e
	s := e.Stats()
	d := overviewData{Uptime: e.Uptime().Round(time.Second), Generation: e.Generation(), GenerationsLive: e.LiveGenerations(),
		Workers: len(e.Workers()), Busy: int(s.Busy())}
	d.Started = time.Now().Add(-e.Uptime())
	d.Queue, d.QueueCap = e.QueueLen()
	for _, l := range e.Listeners() {
		d.Listeners = append(d.Listeners, strings.ToLower(l.Proto.String())+":"+l.Addr.String())
	}
	req, rep := s.Received()
	qf, pe, sc := s.Drops()
	ok, failed := s.Reloads()
	d.Counters = []kv{{"requests received", req}, {"replies received", rep}, {"requests forwarded", s.Forwarded()},
		{"script errors", s.LuaErrors()}, {"route timeouts", s.RouteTimeouts()}, {"dropped: queue full", qf},
		{"dropped: parse error", pe}, {"dropped: by script", sc}, {"reloads ok", ok}, {"reloads failed", failed}}
	s.RequestsByMethod(func(m string, n uint64) {
		if n > 0 {
			d.Methods = append(d.Methods, kv{m, n})
		}
	})
	s.RepliesSent(func(origin int, class string, n uint64) {
		if n == 0 {
			return
		}
		o := "local"
		if origin == engine.OriginRelayed {
			o = "relayed"
		}
		d.Replies = append(d.Replies, kv{class + " " + o, n})
	})
	if hs := s.RequestRouteDuration(); hs.Count > 0 {
		d.AvgRoute = time.Duration(hs.Sum / float64(hs.Count) * float64(time.Second))
	}
	for _, g := range e.ModuleGauges() {
		v := kv{g.Name, fmt.Sprintf("%g", g.Value())}
		if strings.HasPrefix(g.Name, "tm_") {
			d.Transactions = append(d.Transactions, v)
		} else {
			d.Gauges = append(d.Gauges, v)
		}
	}
	_, d.RouteErrorsTotal = e.RouteErrors()
	return d
}

type scriptData struct {
	Generation      uint64
	GenerationsLive int
	Script          string
	Files           []string
	Reloads         []engine.ReloadEvent
	RouteErrors     []engine.RouteErrorEvent
	RouteErrorsAll  uint64
}

func (h *handler) script() scriptData {
	e := h.e
	d := scriptData{Generation: e.Generation(), GenerationsLive: e.LiveGenerations(), Files: e.ScriptFiles(),
		Reloads: e.ReloadHistory()}
	if c := e.Current(); c != nil {
		d.Script = c.ScriptPath()
	}
	d.RouteErrors, d.RouteErrorsAll = e.RouteErrors()
	return d
}

// ul.dump's shape (Kamailio's usrloc RPC).
type ulDump struct {
	Domains []struct {
		Domain string `json:"Domain"`
		AoRs   []struct {
			Info struct {
				AoR      string `json:"AoR"`
				Contacts []struct {
					Contact ulContact `json:"Contact"`
				} `json:"Contacts"`
			} `json:"Info"`
		} `json:"AoRs"`
	} `json:"Domains"`
}

type ulContact struct {
	Address   string  `json:"Address"`
	Expires   any     `json:"Expires"`
	Q         float64 `json:"Q"`
	UserAgent string  `json:"User-Agent"`
	Received  string  `json:"Received"`
	NAT       bool    `json:"NAT"`
	Socket    string  `json:"Socket"`
	Modified  int64   `json:"Last-Modified"`
}

type regRow struct {
	Table, AOR string
	ulContact
	Expires  string
	Modified time.Time
}

type regData struct {
	Query     string
	Rows      []regRow
	AORs      int
	Truncated bool
	Err       string
}

func (h *handler) registrations(aor string) regData {
	d := regData{Query: aor}
	args := []string{}
	if aor != "" {
		args = append(args, aor)
	}
	res, err := h.call("ul.dump", args...)
	var dump ulDump
	if err == nil {
		err = decode(res, &dump)
	}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	for _, dom := range dump.Domains {
		for _, a := range dom.AoRs {
			d.AORs++
			for _, c := range a.Info.Contacts {
				if len(d.Rows) == maxRows {
					d.Truncated = true
					continue
				}
				r := regRow{Table: dom.Domain, AOR: a.Info.AoR, ulContact: c.Contact, Expires: fmt.Sprint(c.Contact.Expires)}
				if n, ok := c.Contact.Expires.(float64); ok {
					r.Expires = (time.Duration(n) * time.Second).String()
				}
				if c.Contact.Modified > 0 {
					r.Modified = time.Unix(c.Contact.Modified, 0)
				}
				d.Rows = append(d.Rows, r)
			}
		}
	}
	return d
}

// dispatcher.list's shape (Kamailio's).
type dsList struct {
	NRSETS  int `json:"NRSETS"`
	RECORDS []struct {
		SET struct {
			ID      int `json:"ID"`
			TARGETS []struct {
				DEST dsDest `json:"DEST"`
			} `json:"TARGETS"`
		} `json:"SET"`
	} `json:"RECORDS"`
}

type dsDest struct {
	URI      string `json:"URI"`
	FLAGS    string `json:"FLAGS"`
	PRIORITY int    `json:"PRIORITY"`
	ATTRS    struct {
		BODY   string `json:"BODY"`
		DUID   string `json:"DUID"`
		WEIGHT int    `json:"WEIGHT"`
		SOCKET string `json:"SOCKET"`
	} `json:"ATTRS"`
	// LATENCY is Kamailio's latency statistics (ds_ping_latency_stats); absent when not measured.
	LATENCY *struct {
		AVG     float64 `json:"AVG"`
		STD     float64 `json:"STD"`
		EST     float64 `json:"EST"`
		MAX     float64 `json:"MAX"`
		TIMEOUT int     `json:"TIMEOUT"`
	} `json:"LATENCY"`
}

type dsRow struct {
	dsDest
	State   string // active, inactive, disabled, trying
	Probing bool
}

type dsSet struct {
	ID    int
	Dests []dsRow
}

type dsData struct {
	Sets []dsSet
	Err  string
}

func dsState(flags string) (string, bool) {
	st := "active"
	if flags != "" {
		switch flags[0] {
		case 'I':
			st = "inactive"
		case 'D':
			st = "disabled"
		case 'T':
			st = "trying"
		}
	}
	return st, len(flags) > 1 && flags[1] == 'P'
}

func (h *handler) dispatcher() dsData {
	var d dsData
	res, err := h.call("dispatcher.list")
	var l dsList
	if err == nil {
		err = decode(res, &l)
	}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	for _, r := range l.RECORDS {
		s := dsSet{ID: r.SET.ID}
		for _, t := range r.SET.TARGETS {
			st, p := dsState(t.DEST.FLAGS)
			s.Dests = append(s.Dests, dsRow{dsDest: t.DEST, State: st, Probing: p})
		}
		d.Sets = append(d.Sets, s)
	}
	return d
}

type htTable struct {
	Name  string `json:"name"`
	Slots int    `json:"slots"`
	All   int    `json:"all"`
}

type htItem struct {
	Name   string `json:"name"`
	Value  any    `json:"value"`
	Expire string `json:"expire"`
}

type htData struct {
	Tables    []htTable
	Table     string
	Query     string
	Items     []htItem
	Truncated bool
	Err       string
}

func (h *handler) htable(table, q string) htData {
	d := htData{Table: table, Query: q}
	res, err := h.call("htable.stats")
	if err == nil {
		err = decode(res, &d.Tables)
	}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	if table == "" {
		return d
	}
	res, err = h.call("htable.dump", table)
	var items []htItem
	if err == nil {
		err = decode(res, &items)
	}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	for _, it := range items {
		if q != "" && !strings.Contains(it.Name, q) {
			continue
		}
		if len(d.Items) == maxRows {
			d.Truncated = true
			break
		}
		d.Items = append(d.Items, it)
	}
	return d
}

type dlgData struct {
	Columns []string
	Rows    [][]string
	Err     string
}

// dialogs renders dlg.list generically (Kamailio's dialog RPC: a list of objects): one column per key.
func (h *handler) dialogs() dlgData {
	var d dlgData
	res, err := h.call("dlg.list")
	var list []map[string]any
	if err == nil {
		err = decode(res, &list)
	}
	if err != nil {
		d.Err = err.Error()
		return d
	}
	cols := map[string]bool{}
	for _, m := range list {
		for k := range m {
			cols[k] = true
		}
	}
	d.Columns = sortedKeys(cols)
	for i, m := range list {
		if i == maxRows {
			break
		}
		row := make([]string, len(d.Columns))
		for j, c := range d.Columns {
			switch v := m[c].(type) {
			case nil:
			case string:
				row[j] = v
			case float64:
				row[j] = fmt.Sprintf("%g", v)
			default:
				b, _ := json.Marshal(v)
				row[j] = string(b)
			}
		}
		d.Rows = append(d.Rows, row)
	}
	sort.SliceStable(d.Rows, func(a, b int) bool { return strings.Join(d.Rows[a], "\x00") < strings.Join(d.Rows[b], "\x00") })
	return d
}
