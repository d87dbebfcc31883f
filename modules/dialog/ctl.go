package dialog

import (
	"fmt"
	"sort"

	"github.com/siplua/siplua/engine"
)

// RPC: dlg.list, dlg.terminate, dlg.stats (Kamailio's dlg.list, dlg.end_dlg/terminate_dlg, stats).
func (d *Dialog) RPC() []engine.Command {
	return []engine.Command{
		{Name: "dlg.list", Help: "list the dialogs: [call-id]", Fn: d.ctlList},
		{Name: "dlg.terminate", Help: "end a dialog with a BYE to both sides: call-id [from-tag [to-tag]] | h_entry h_id", Fn: d.ctlTerminate},
		{Name: "dlg.stats", Help: "dialog counters", Fn: func([]string) (any, error) { return d.Stats(), nil }},
	}
}

// List returns the dialogs (all, or those of one Call-ID), by h_entry and h_id, with their state names.
func (d *Dialog) List(callID string) []map[string]any {
	d.tab.mu.Lock()
	var xs []*dlg
	for _, x := range d.tab.byID {
		if callID == "" || x.CallID == callID {
			xs = append(xs, x)
		}
	}
	infos := make([]Info, len(xs))
	for i, x := range xs {
		infos[i] = x.snapshot()
	}
	d.tab.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].HEntry != infos[j].HEntry {
			return infos[i].HEntry < infos[j].HEntry
		}
		return infos[i].HID < infos[j].HID
	})
	out := make([]map[string]any, 0, len(infos))
	for _, in := range infos {
		out = append(out, map[string]any{
			"h_entry": in.HEntry, "h_id": in.HID, "state": in.State, "state_name": stateNames[in.State],
			"call-id": in.CallID, "from_uri": in.FromURI, "from_tag": in.FromTag, "to_uri": in.ToURI,
			"to_tag": in.ToTag, "caller_contact": in.CallerContact, "callee_contact": in.CalleeContact,
			"caller_cseq": in.CallerCSeq, "callee_cseq": in.CalleeCSeq, "caller_bind_addr": in.CallerSock,
			"callee_bind_addr": in.CalleeSock, "init_ts": in.Created, "start_ts": in.Start, "timeout": in.Timeout,
			"dflags": in.Dflags, "variables": in.Vars, "profiles": in.Profiles,
		})
	}
	return out
}

func (d *Dialog) ctlList(args []string) (any, error) {
	callID := ""
	if len(args) > 0 {
		callID = args[0]
	}
	return d.List(callID), nil
}

// Terminate ends a dialog found by Call-ID (and tags) with a BYE to both sides.
func (d *Dialog) Terminate(callID, ftag, ttag string) error {
	d.tab.mu.Lock()
	var x *dlg
	for _, c := range d.tab.byCallID[callID] {
		if (ftag == "" || c.FromTag == ftag) && (ttag == "" || c.ToTag == ttag) {
			x = c
			break
		}
	}
	d.tab.mu.Unlock()
	return d.terminate(x, callID)
}

func (d *Dialog) terminate(x *dlg, what string) error {
	if x == nil {
		return fmt.Errorf("dlg.terminate: no dialog %s", what)
	}
	d.tab.mu.Lock()
	confirmed := x.State >= StateConfirmedNA
	info, sd := x.snapshot(), x.sides
	d.tab.mu.Unlock()
	if !d.end(x, "terminated", nil) {
		return fmt.Errorf("dlg.terminate: dialog %s already ended", what)
	}
	if confirmed {
		d.sendBye(&info, sd, true, true)
	}
	return nil
}

func (d *Dialog) ctlTerminate(args []string) (any, error) {
	if len(args) == 2 {
		var he, hid uint32
		if _, err := fmt.Sscan(args[0], &he); err == nil {
			if _, err := fmt.Sscan(args[1], &hid); err == nil {
				d.tab.mu.Lock()
				x := d.tab.byID[uint64(he)<<32|uint64(hid)]
				d.tab.mu.Unlock()
				if x != nil {
					return "ok", d.terminate(x, args[0]+" "+args[1])
				}
			}
		}
	}
	if len(args) < 1 || len(args) > 3 {
		return nil, fmt.Errorf("dlg.terminate: expected call-id [from-tag [to-tag]] or h_entry h_id, got %d arguments", len(args))
	}
	args = append(args, "", "")
	if err := d.Terminate(args[0], args[1], args[2]); err != nil {
		return nil, err
	}
	return "ok", nil
}

// Stats are the counters of dlg.stats (Kamailio's dialog statistics names).
func (d *Dialog) Stats() map[string]int64 {
	return map[string]int64{
		"active_dialogs": d.stats.active.Load(), "early_dialogs": d.stats.early.Load(),
		"processed_dialogs": d.stats.processed.Load(), "expired_dialogs": d.stats.expired.Load(),
		"failed_dialogs": d.stats.failed.Load(),
	}
}
