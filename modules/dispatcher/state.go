package dispatcher

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/siplua/siplua/engine"
)

// rctx is what the event callback sees as $dsg(...): Kamailio's ds_rctx_t (flags 1 = a reply was
// received; code and reason of the reply, or 8x0 when the state was set by the script), plus the event.
type rctx struct {
	flags  int
	code   int
	reason string
	event  string
}

const (
	evDown = "dispatcher:dst-down"
	evUp   = "dispatcher:dst-up"
)

// lookup finds a destination of the current list by set and URI (case-insensitive, as Kamailio).
func (ds *Dispatcher) lookup(set int, uri string) (*dsSet, *dest) {
	l := ds.list.Load()
	if l == nil {
		return nil, nil
	}
	s := l.sets[set]
	if s == nil {
		return nil, nil
	}
	for _, d := range s.dests {
		if strings.EqualFold(d.uri, uri) {
			return s, d
		}
	}
	return s, nil
}

// updateState is Kamailio's ds_update_state: trying counts failures up to ds_probing_threshold before the
// destination becomes inactive; an inactive destination needs ds_inactive_threshold successes to become
// active again. A change across usable/unusable runs the event callback: on m when the script caused it
// (ds_mark_dst), else on a worker with a message of its own.
func (ds *Dispatcher) updateState(m *engine.Msg, set int, uri string, state uint32, rc rctx) error {
	s, d := ds.lookup(set, uri)
	if s == nil {
		return fmt.Errorf("destination set %d not found", set)
	}
	if d == nil {
		return fmt.Errorf("destination %s not found in set %d", uri, set)
	}
	s.mu.Lock()
	old := d.state.Load()
	init := state
	st := old &^ stAll
	if state&stTrying != 0 && old&stInactive != 0 {
		// inactive stays inactive: it has to become active before it can be trying
		state = state&^stTrying | stInactive
	}
	if state&stDisabled != 0 {
		st |= stDisabled
	} else {
		st |= state
	}
	if state&stTrying != 0 {
		d.count++
		if d.count >= ds.ProbingThreshold {
			st = st&^stTrying | stInactive
			d.count = 0
		}
	} else if init&stTrying == 0 && old&stInactive != 0 {
		d.count++
		if d.count < ds.InactiveThreshold {
			st |= stInactive
			if old&stProbing != 0 {
				st |= stProbing
			}
		} else {
			d.count = 0
		}
	} else {
		d.count = 0
	}
	d.state.Store(st)
	if d.rweight > 0 && skip(old) != skip(st) {
		s.initRelWeights()
	}
	s.mu.Unlock()
	switch {
	case !skip(old) && skip(st):
		rc.event = evDown
	case skip(old) && !skip(st):
		rc.event = evUp
	default:
		return nil
	}
	ds.changes.Add(1)
	ds.log.Info("destination state changed", "event", rc.event, "set", set, "uri", d.uri, "flags", flagString(st), "code", rc.code)
	ds.runEvent(m, d.uri, rc)
	return nil
}

// setState is the admin's state change (dispatcher.set_state, Kamailio's ds_reinit_state): no counters,
// no event.
func (ds *Dispatcher) setState(s *dsSet, d *dest, state uint32) {
	s.mu.Lock()
	old := d.state.Load()
	st := old&^stAll | state
	d.state.Store(st)
	d.count = 0
	if d.rweight > 0 && skip(old) != skip(st) {
		s.initRelWeights()
	}
	s.mu.Unlock()
}

// runEvent runs event_callback. With a message being routed (ds_mark_dst in a failure route) it runs
// there and then, as Kamailio runs event_route[dispatcher:dst-down] on the current message; otherwise
// (a ping result) it is queued to a worker with a message whose R-URI is the destination, as Kamailio's
// faked message — never on the pinger goroutine, which must not run Lua.
func (ds *Dispatcher) runEvent(m *engine.Msg, uri string, rc rctx) {
	fn := ds.EventCallback
	if fn == "" {
		return
	}
	call := func(m *engine.Msg) {
		prev := m.ModState(modName)
		m.SetModState(modName, &rc)
		err := m.CallRouteArgs(fn, rc.event) // KEMI event callbacks get the event name
		m.SetModState(modName, prev)         // nil: deleted
		if err != nil {
			ds.log.Warn("event_callback failed", "function", fn, "event", rc.event, "uri", uri, "err", err)
		}
		ds.callbacks.Add(1)
	}
	if m != nil {
		call(m)
		return
	}
	e := ds.e
	if e == nil {
		return
	}
	raw := "OPTIONS " + uri + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKdsevent\r\n" +
		"From: <" + ds.PingFrom + ">;tag=dsevent\r\nTo: <" + uri + ">\r\nCall-ID: dsevent\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n"
	fm, err := e.NewMsg([]byte(raw), netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 9), engine.UDP)
	if err != nil {
		ds.log.Warn("event_callback: cannot build its message", "uri", uri, "err", err)
		return
	}
	e.RunOnWorker(fm, call)
}

// PVs: $dsg(code), $dsg(reason), $dsg(flags) in the event callback, as Kamailio; $dsg(event) is the event
// name (siplua: for engines that do not pass it as the callback's argument).
func (ds *Dispatcher) PVs() []engine.PV {
	return []engine.PV{{Name: "dsg", Get: func(m *engine.Msg, arg string) engine.Value {
		rc, _ := m.ModState(modName).(*rctx)
		if rc == nil {
			return engine.Value{}
		}
		switch arg {
		case "code":
			return engine.IntVal(int64(rc.code))
		case "reason":
			return engine.StrVal(rc.reason)
		case "flags":
			return engine.IntVal(int64(rc.flags))
		case "event":
			return engine.StrVal(rc.event)
		}
		return engine.Value{}
	}}}
}

// setPV assigns a pseudo-variable named by setid_pvname / attrs_pvname ("$avp(x)", "$var(x)"), through the
// module that provides it.
func (ds *Dispatcher) setPV(m *engine.Msg, spec pvSpec, v engine.Value) {
	if spec.name == "" || ds.e == nil {
		return
	}
	pv, ok := ds.e.LookupPV(spec.name)
	if !ok || pv.Set == nil {
		return
	}
	if err := pv.Set(m, spec.arg, v); err != nil {
		ds.log.Debug("cannot set pseudo-variable", "pv", spec.name, "err", err)
	}
}

type pvSpec struct{ name, arg string }

// parsePVSpec splits "$name(arg)" or "$name"; "" is no pseudo-variable.
func parsePVSpec(s string) (pvSpec, bool) {
	if s == "" {
		return pvSpec{}, true
	}
	name, arg, ok := engine.ParsePVSpec(s)
	return pvSpec{name: name, arg: arg}, ok
}
