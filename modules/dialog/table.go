package dialog

import (
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"time"
)

// Dialog states, Kamailio's numbers ($dlg(state), dlg.list).
const (
	StateUnconfirmed = 1 // INVITE seen, no reply with a To tag
	StateEarly       = 2 // a provisional reply with a To tag
	StateConfirmedNA = 3 // 2xx relayed, no ACK yet
	StateConfirmed   = 4 // ACK seen
	StateDeleted     = 5
)

var stateNames = [...]string{"", "unconfirmed", "early", "confirmed_not_acked", "confirmed", "deleted"}

// hashSize is Kamailio's default dialog hash_size: h_entry is the Call-ID's bucket.
const hashSize = 4096

// Info is a dialog as dlg.list, events and the Redis backend show it.
type Info struct {
	HEntry        uint32            `json:"h_entry"`
	HID           uint32            `json:"h_id"`
	State         int               `json:"state"`
	CallID        string            `json:"call-id"`
	From          string            `json:"from"` // the From header value of the INVITE (with its tag)
	To            string            `json:"to"`   // the To header value of the 2xx (with its tag)
	FromURI       string            `json:"from_uri"`
	ToURI         string            `json:"to_uri"`
	FromTag       string            `json:"from_tag"`
	ToTag         string            `json:"to_tag"`
	RURI          string            `json:"request_uri"`
	CallerContact string            `json:"caller_contact"`
	CalleeContact string            `json:"callee_contact,omitempty"`
	CallerCSeq    uint32            `json:"caller_cseq"`
	CalleeCSeq    uint32            `json:"callee_cseq"`
	CallerRoutes  []string          `json:"caller_route_set,omitempty"` // toward the caller, nearest first
	CalleeRoutes  []string          `json:"callee_route_set,omitempty"` // toward the callee, nearest first
	CallerAddr    string            `json:"caller_addr"`                // where the INVITE came from (proto:ip:port)
	CalleeAddr    string            `json:"callee_addr,omitempty"`      // where the 2xx came from
	CallerSock    string            `json:"caller_bind_addr"`
	CalleeSock    string            `json:"callee_bind_addr,omitempty"`
	Created       int64             `json:"init_ts"`  // unix seconds
	Start         int64             `json:"start_ts"` // unix seconds when confirmed, 0 before
	StartNS       int64             `json:"start_ns,omitempty"`
	Timeout       int               `json:"timeout"` // lifetime in seconds once confirmed
	Dflags        uint32            `json:"dflags"`
	TimeoutBye    bool              `json:"timeout_bye,omitempty"`
	KaSrc         bool              `json:"ka_src,omitempty"`
	KaDst         bool              `json:"ka_dst,omitempty"`
	Vars          map[string]string `json:"variables,omitempty"`
	Profiles      []ProfileRef      `json:"profiles,omitempty"`
}

// ProfileRef is a dialog's membership of a profile.
type ProfileRef struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// dlg is one dialog: its Info plus its timer. table.mu guards every field.
type dlg struct {
	Info
	timer    *time.Timer
	expireAt time.Time // when timer fires
	kaFailed int
	ended    bool
	sides    sides
}

func (x *dlg) key() uint64 { return uint64(x.HEntry)<<32 | uint64(x.HID) }

// snapshot copies the dialog's Info (maps and slices too) for use outside the lock.
func (x *dlg) snapshot() Info {
	i := x.Info
	i.Vars = maps.Clone(x.Vars)
	i.Profiles = slices.Clone(x.Profiles)
	i.CallerRoutes = slices.Clone(x.CallerRoutes)
	i.CalleeRoutes = slices.Clone(x.CalleeRoutes)
	return i
}

// table indexes the dialogs by Call-ID and by (h_entry, h_id). One mutex: every operation is a few map
// accesses, and sends and events happen after it is released.
type table struct {
	mu       sync.Mutex
	byCallID map[string][]*dlg
	byID     map[uint64]*dlg
	profiles map[string]map[string]int // profile → value → dialogs
	late     map[string]*answer        // 2xx that came before their dlg_flag dialog was made (bounded)
}

// lateMax bounds the 2xx kept for dlg_flag dialogs not made yet; lateTTL is how long one is kept.
const (
	lateMax = 1024
	lateTTL = 5 * time.Second
)

// keepLate keeps a 2xx for the dlg_flag dialog its INVITE's route is about to make. Called with mu held.
func (t *table) keepLate(callID, fromTag string, a *answer) {
	if t.late == nil {
		t.late = map[string]*answer{}
	}
	if len(t.late) >= lateMax {
		for k, v := range t.late {
			if time.Since(v.at) > lateTTL {
				delete(t.late, k)
			}
		}
		if len(t.late) >= lateMax {
			return
		}
	}
	if _, dup := t.late[callID+"\x00"+fromTag]; !dup {
		t.late[callID+"\x00"+fromTag] = a
	}
}

// takeLate returns (and forgets) the 2xx kept for a dialog. Called with mu held.
func (t *table) takeLate(callID, fromTag string) *answer {
	a := t.late[callID+"\x00"+fromTag]
	if a == nil {
		return nil
	}
	delete(t.late, callID+"\x00"+fromTag)
	if time.Since(a.at) > lateTTL {
		return nil
	}
	return a
}

func (t *table) init() {
	t.byCallID = map[string][]*dlg{}
	t.byID = map[uint64]*dlg{}
	t.profiles = map[string]map[string]int{}
}

func hEntry(callID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(callID))
	return h.Sum32() % hashSize
}

// add indexes a dialog. Called with mu held.
func (t *table) add(x *dlg) {
	t.byCallID[x.CallID] = append(t.byCallID[x.CallID], x)
	t.byID[x.key()] = x
	for _, p := range x.Profiles {
		t.profileAdd(p, 1)
	}
}

// remove drops a dialog from the indexes and its profiles. Called with mu held.
func (t *table) remove(x *dlg) {
	if _, ok := t.byID[x.key()]; !ok {
		return
	}
	delete(t.byID, x.key())
	l := t.byCallID[x.CallID]
	if i := slices.Index(l, x); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(t.byCallID, x.CallID)
	} else {
		t.byCallID[x.CallID] = l
	}
	for _, p := range x.Profiles {
		t.profileAdd(p, -1)
	}
	if x.timer != nil {
		x.timer.Stop()
	}
}

func (t *table) profileAdd(p ProfileRef, n int) {
	vals := t.profiles[p.Name]
	if vals == nil {
		vals = map[string]int{}
		t.profiles[p.Name] = vals
	}
	vals[p.Value] += n
	if vals[p.Value] <= 0 {
		delete(vals, p.Value)
	}
}

// profileSize counts the dialogs in a profile, with value or (value "") all of them. Called with mu held.
func (t *table) profileSize(name, value string, withValue bool) int {
	vals := t.profiles[name]
	if !withValue || value == "" {
		n := 0
		for _, c := range vals {
			n += c
		}
		return n
	}
	return vals[value]
}

// Direction of an in-dialog message.
const (
	dirDownstream = 1 // caller → callee (From tag is the caller's)
	dirUpstream   = 2 // callee → caller
)

// match finds the dialog of a Call-ID and the tags of a message; toTag "" matches a dialog whose To tag
// is not known yet (the INVITE) or any (a reply seen before the To tag was stored). Called with mu held.
func (t *table) match(callID, fromTag, toTag string) (*dlg, int) {
	for _, x := range t.byCallID[callID] {
		switch {
		case x.FromTag == fromTag && (toTag == "" || x.ToTag == "" || x.ToTag == toTag):
			return x, dirDownstream
		case x.ToTag != "" && x.ToTag == fromTag && x.FromTag == toTag:
			return x, dirUpstream
		}
	}
	return nil, 0
}

func (t *table) stopTimers() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range t.byID {
		if x.timer != nil {
			x.timer.Stop()
		}
	}
}
