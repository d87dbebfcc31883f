package dialog

import (
	"slices"
	"strconv"
	"time"

	"github.com/siplua/siplua/engine"
)

// dlgBye is dlg_bye(side): a BYE to "caller", "callee" or "all" (both), and the dialog ends. 1 sent,
// -1 no confirmed dialog or a bad side.
func (d *Dialog) dlgBye(m *engine.Msg, side string) int {
	caller, callee := false, false
	switch side {
	case "all", "":
		caller, callee = true, true
	case "caller":
		caller = true
	case "callee":
		callee = true
	default:
		return -1
	}
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	if x.State < StateConfirmedNA || x.ended {
		d.tab.mu.Unlock()
		return -1
	}
	info, sd := x.snapshot(), x.sides
	d.tab.mu.Unlock()
	if !d.end(x, "dlg_bye", m) {
		return -1
	}
	d.sendBye(&info, sd, caller, callee)
	return 1
}

// dlgSetTimeout is dlg_set_timeout(seconds) for the message's dialog: a confirmed dialog's timer
// restarts with it. 1 done, -1 no dialog or a bad value.
func (d *Dialog) dlgSetTimeout(m *engine.Msg, secs int) int {
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	return d.setTimeout(x, secs)
}

func (d *Dialog) setTimeout(x *dlg, secs int) int {
	if secs <= 0 {
		return -1
	}
	d.tab.mu.Lock()
	if x.ended {
		d.tab.mu.Unlock()
		return -1
	}
	x.Timeout = secs
	if x.State >= StateConfirmedNA {
		d.armLocked(x, time.Duration(secs)*time.Second-time.Since(time.Unix(0, x.StartNS)))
	}
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
	return 1
}

// dlgSetTimeoutID is dlg_set_timeout_id(seconds, h_entry, h_id).
func (d *Dialog) dlgSetTimeoutID(m *engine.Msg, secs, he, hid int) int {
	d.tab.mu.Lock()
	x := d.tab.byID[uint64(uint32(he))<<32|uint64(uint32(hid))]
	d.tab.mu.Unlock()
	if x == nil {
		return -1
	}
	return d.setTimeout(x, secs)
}

// setProfile is set_dlg_profile(profile, value): the message's dialog joins a profile ("" value for a
// profile without values). 1 done, -1 unknown profile, missing value or no dialog.
func (d *Dialog) setProfile(m *engine.Msg, name, value string) int {
	withValue, ok := d.profiles[name]
	if !ok || withValue != (value != "") {
		return -1
	}
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	ref := ProfileRef{Name: name, Value: value}
	d.tab.mu.Lock()
	if x.ended {
		d.tab.mu.Unlock()
		return -1
	}
	if !slices.Contains(x.Profiles, ref) {
		x.Profiles = append(x.Profiles, ref)
		d.tab.profileAdd(ref, 1)
	}
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
	return 1
}

// unsetProfile is unset_dlg_profile(profile, value). 1 removed, -1 not in it.
func (d *Dialog) unsetProfile(m *engine.Msg, name, value string) int {
	if _, ok := d.profiles[name]; !ok {
		return -1
	}
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	i := slices.IndexFunc(x.Profiles, func(p ProfileRef) bool { return p.Name == name && (value == "" || p.Value == value) })
	if i < 0 || x.ended {
		d.tab.mu.Unlock()
		return -1
	}
	d.tab.profileAdd(x.Profiles[i], -1)
	x.Profiles = slices.Delete(x.Profiles, i, i+1)
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
	return 1
}

// isInProfile is is_in_profile(profile, value) for the message's dialog ("" value: any). 1 yes, -1 no.
func (d *Dialog) isInProfile(m *engine.Msg, name, value string) int {
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	for _, p := range x.Profiles {
		if p.Name == name && (value == "" || p.Value == value) {
			return 1
		}
	}
	return -1
}

// getProfileSize is get_profile_size(profile, value, "$var(n)"): the number of dialogs in the profile
// (with that value, or all of them for ""), stored in the pseudo-variable. 1 done, -1 unknown profile or
// variable.
func (d *Dialog) getProfileSize(m *engine.Msg, name, value, spv string) int {
	withValue, ok := d.profiles[name]
	if !ok {
		return -1
	}
	pname, arg, ok := engine.ParsePVSpec(spv)
	if !ok || m.E == nil {
		return -1
	}
	pv, ok := m.E.LookupPV(pname)
	if !ok || pv.Set == nil {
		return -1
	}
	d.tab.mu.Lock()
	n := d.tab.profileSize(name, value, withValue)
	d.tab.mu.Unlock()
	if err := pv.Set(m, arg, engine.IntVal(int64(n))); err != nil {
		return -1
	}
	return 1
}

// ProfileSize counts the dialogs of a profile (value "" = all), for Go callers and tests.
func (d *Dialog) ProfileSize(name, value string) int {
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	return d.tab.profileSize(name, value, d.profiles[name])
}

// isFlagSet is dlg_isflagset(flag): 1 set, -1 not set or no dialog (flags 0..31).
func (d *Dialog) isFlagSet(m *engine.Msg, f int) int {
	if f < 0 || f > 31 {
		return -1
	}
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	if x.Dflags&(1<<uint(f)) != 0 {
		return 1
	}
	return -1
}

func (d *Dialog) changeFlag(m *engine.Msg, f int, set bool) int {
	if f < 0 || f > 31 {
		return -1
	}
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	if set {
		x.Dflags |= 1 << uint(f)
	} else {
		x.Dflags &^= 1 << uint(f)
	}
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
	return 1
}

// isKnown is is_known_dlg(): 1 when the message belongs to a tracked dialog.
func (d *Dialog) isKnown(m *engine.Msg) int {
	if x, _ := d.current(m); x != nil {
		return 1
	}
	return -1
}

// dlgGet is dlg_get(callid, ftag, ttag): makes that dialog the message's current one ($dlg, $dlg_var,
// dlg_bye work on it). 1 found, -1 not.
func (d *Dialog) dlgGet(m *engine.Msg, callID, ftag, ttag string) int {
	if d.tab.byCallID == nil {
		return -1
	}
	d.tab.mu.Lock()
	x, dir := d.tab.match(callID, ftag, ttag)
	d.tab.mu.Unlock()
	if x == nil {
		return -1
	}
	setState(m, &msgState{x: x, dir: dir})
	return 1
}

// property is dlg_set_property / dlg_reset_property: "ka-src", "ka-dst" (keepalives to the caller or
// callee), "timeout-noreset" (accepted; siplua never resets the timeout on in-dialog requests).
func (d *Dialog) property(m *engine.Msg, p string, set bool) int {
	x, _ := d.current(m)
	if x == nil {
		return -1
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	switch p {
	case "ka-src":
		x.KaSrc = set
	case "ka-dst":
		x.KaDst = set
	case "timeout-noreset":
	default:
		return -1
	}
	return 1
}

func (d *Dialog) varGet(m *engine.Msg, k string) engine.Value {
	x, _ := d.current(m)
	if x == nil {
		return engine.Value{}
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	if v, ok := x.Vars[k]; ok {
		return engine.StrVal(v)
	}
	return engine.Value{}
}

// varSet sets (or with a null value removes) a dialog variable. 1 done, -1 no dialog.
func (d *Dialog) varSet(m *engine.Msg, k string, v engine.Value) int {
	x, _ := d.current(m)
	if x == nil || k == "" {
		return -1
	}
	d.tab.mu.Lock()
	if v.Kind == engine.Null {
		delete(x.Vars, k)
	} else {
		if x.Vars == nil {
			x.Vars = map[string]string{}
		}
		x.Vars[k] = v.String()
	}
	info := x.snapshot()
	d.tab.mu.Unlock()
	d.save(info)
	return 1
}

// attr is one $dlg(...) attribute of a dialog. Called with tab.mu held.
func attr(x *dlg, name string) engine.Value {
	i := func(n int64) engine.Value { return engine.IntVal(n) }
	s := func(v string) engine.Value { return engine.StrVal(v) }
	switch name {
	case "h_id":
		return i(int64(x.HID))
	case "h_entry":
		return i(int64(x.HEntry))
	case "ref":
		return i(1)
	case "state":
		return i(int64(x.State))
	case "callid":
		return s(x.CallID)
	case "from_uri":
		return s(x.FromURI)
	case "from_tag":
		return s(x.FromTag)
	case "to_uri":
		return s(x.ToURI)
	case "to_tag":
		return s(x.ToTag)
	case "from_cseq":
		return s(strconv.FormatUint(uint64(x.CallerCSeq), 10))
	case "to_cseq":
		return s(strconv.FormatUint(uint64(x.CalleeCSeq), 10))
	case "from_contact":
		return s(x.CallerContact)
	case "to_contact":
		return s(x.CalleeContact)
	case "from_bindaddr":
		return s(x.CallerSock)
	case "to_bindaddr":
		return s(x.CalleeSock)
	case "from_rs":
		return s(joinRoutes(x.CallerRoutes))
	case "to_rs":
		return s(joinRoutes(x.CalleeRoutes))
	case "dflags":
		return i(int64(x.Dflags))
	case "sflags":
		return i(0)
	case "lifetime", "timeout":
		return i(int64(x.Timeout))
	case "start_ts":
		return i(x.Start)
	case "init_ts":
		return i(x.Created)
	case "toroute", "toroute_name":
		return s("")
	}
	return engine.Value{}
}

func joinRoutes(r []string) string {
	out := ""
	for i, v := range r {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// PVs: $dlg(attr), $dlg_ctx(attr) and $dlg_var(name) of the message's dialog.
func (d *Dialog) PVs() []engine.PV {
	return []engine.PV{
		{Name: "dlg", Get: func(m *engine.Msg, a string) engine.Value {
			x, _ := d.current(m)
			if x == nil {
				return engine.Value{}
			}
			d.tab.mu.Lock()
			defer d.tab.mu.Unlock()
			return attr(x, a)
		}},
		{Name: "dlg_ctx", Get: d.ctxGet, Set: d.ctxSet},
		{Name: "dlg_var",
			Get: func(m *engine.Msg, k string) engine.Value { return d.varGet(m, k) },
			Set: func(m *engine.Msg, k string, v engine.Value) error {
				if d.varSet(m, k, v) < 0 {
					return errNoDialog
				}
				return nil
			}},
	}
}

type dlgError string

func (e dlgError) Error() string { return string(e) }

const errNoDialog = dlgError("the message has no dialog (call KSR.dialog.dlg_manage() first)")

func (d *Dialog) ctxGet(m *engine.Msg, a string) engine.Value {
	x, dir := d.current(m)
	switch a {
	case "set":
		if x != nil {
			return engine.IntVal(1)
		}
		return engine.IntVal(0)
	case "dir":
		return engine.IntVal(int64(dir))
	}
	if x == nil {
		return engine.Value{}
	}
	d.tab.mu.Lock()
	defer d.tab.mu.Unlock()
	switch a {
	case "timeout_bye":
		if x.TimeoutBye {
			return engine.IntVal(1)
		}
		return engine.IntVal(0)
	case "timeout":
		return engine.IntVal(int64(x.Timeout))
	case "flags":
		return engine.IntVal(int64(x.Dflags))
	case "on":
		return engine.IntVal(1)
	}
	return engine.Value{}
}

func (d *Dialog) ctxSet(m *engine.Msg, a string, v engine.Value) error {
	x, _ := d.current(m)
	if x == nil {
		return errNoDialog
	}
	n := v.I
	if v.Kind == engine.Str {
		n, _ = strconv.ParseInt(v.S, 10, 64)
	}
	switch a {
	case "timeout_bye":
		d.tab.mu.Lock()
		x.TimeoutBye = n != 0
		d.tab.mu.Unlock()
	case "timeout":
		if d.setTimeout(x, int(n)) < 0 {
			return dlgError("$dlg_ctx(timeout): expected a positive number of seconds")
		}
	case "flags":
		d.tab.mu.Lock()
		x.Dflags = uint32(n)
		d.tab.mu.Unlock()
	default:
		return dlgError("$dlg_ctx(" + a + ") is read-only or unknown")
	}
	return nil
}
