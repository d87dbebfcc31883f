package htable

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/siplua/siplua/engine"
)

// The htable.* control commands follow Kamailio's htable RPC: names, argument order (table first),
// messages and result shapes.
func (h *Htable) RPC() []engine.Command {
	return []engine.Command{
		{Name: "htable.get", Help: "htable.get TABLE KEY: one item (name, value, expire)", Fn: h.rpcGet},
		{Name: "htable.delete", Help: "htable.delete TABLE KEY: remove one item", Fn: h.rpcDelete},
		{Name: "htable.sets", Help: "htable.sets TABLE KEY VALUE: set a string item", Fn: h.rpcSets},
		{Name: "htable.seti", Help: "htable.seti TABLE KEY VALUE: set an integer item", Fn: h.rpcSeti},
		{Name: "htable.setex", Help: "htable.setex TABLE KEY SECONDS: set an item's lifetime (autoexpire tables)", Fn: h.rpcSetex},
		{Name: "htable.dump", Help: "htable.dump TABLE: every live item", Fn: h.rpcDump},
		{Name: "htable.reload", Help: "htable.reload TABLE: a memory table is replaced by its items in the snapshot file; a redis table is read from Redis anyway (nothing to do)", Fn: h.rpcReload},
		{Name: "htable.flush", Help: "htable.flush TABLE: remove every item (sht_reset)", Fn: h.rpcFlush},
		{Name: "htable.listTables", Help: "htable.listTables: the configured tables and their parameters", Fn: h.rpcList},
		{Name: "htable.stats", Help: "htable.stats: items per table", Fn: h.rpcStats},
	}
}

// RPCItem is one item in htable.get and htable.dump, with Kamailio's field names.
type RPCItem struct {
	Name   string `json:"name"`
	Value  any    `json:"value"` // string or integer
	Expire string `json:"expire"`
}

func rpcItem(key string, it item) RPCItem {
	exp := "NEVER"
	if it.exp != 0 {
		exp = time.UnixMilli(it.exp).Format("2006-01-02 15:04:05")
	}
	var v any = it.n
	if it.str {
		v = it.s
	}
	return RPCItem{Name: key, Value: v, Expire: exp}
}

func (h *Htable) rpcTable(args []string, n int, usage string) (*table, error) {
	if h.tables == nil {
		return nil, errors.New("htable is not started")
	}
	if len(args) < n {
		return nil, fmt.Errorf("Not enough parameters (%s)", usage)
	}
	t := h.tables[args[0]]
	if t == nil {
		return nil, errors.New("No such htable")
	}
	return t, nil
}

func (h *Htable) rpcGet(args []string) (any, error) {
	t, err := h.rpcTable(args, 2, "htable name and key name")
	if err != nil {
		return nil, err
	}
	it, ok, err := t.store.get(args[1])
	if err != nil {
		return nil, fmt.Errorf("htable.get %s: %w", args[0], err)
	}
	if !ok {
		return nil, errors.New("Key name doesn't exist in htable.")
	}
	return map[string]RPCItem{"item": rpcItem(args[1], it)}, nil
}

func (h *Htable) rpcDelete(args []string) (any, error) {
	t, err := h.rpcTable(args, 2, "htable name and key name")
	if err != nil {
		return nil, err
	}
	if err := t.store.del(args[1]); err != nil {
		return nil, fmt.Errorf("htable.delete %s: %w", args[0], err)
	}
	return "ok", nil
}

func (h *Htable) rpcSets(args []string) (any, error) {
	t, err := h.rpcTable(args, 3, "htable name, key name and value")
	if err != nil {
		return nil, err
	}
	if err := t.store.set(args[1], item{str: true, s: args[2]}, 0); err != nil {
		return nil, fmt.Errorf("htable.sets %s: %w", args[0], err)
	}
	return "ok", nil
}

func (h *Htable) rpcSeti(args []string) (any, error) {
	t, err := h.rpcTable(args, 3, "htable name, key name and value")
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("htable.seti: value: expected an integer, got %q", args[2])
	}
	if err := t.store.set(args[1], item{n: n}, 0); err != nil {
		return nil, fmt.Errorf("htable.seti %s: %w", args[0], err)
	}
	return "ok", nil
}

func (h *Htable) rpcSetex(args []string) (any, error) {
	t, err := h.rpcTable(args, 3, "htable name, key name and expire")
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("htable.setex: expire: expected seconds, got %q", args[2])
	}
	if t.expireMs == 0 {
		return "ok", nil
	}
	if err := t.store.setExpire(args[1], n); err != nil {
		return nil, fmt.Errorf("htable.setex %s: %w", args[0], err)
	}
	return "ok", nil
}

// rpcDump lists the live items sorted by name (Kamailio groups them by slot; the order there is the
// hash order, which no one can rely on).
func (h *Htable) rpcDump(args []string) (any, error) {
	t, err := h.rpcTable(args, 1, "htable name")
	if err != nil {
		return nil, err
	}
	out := []RPCItem{}
	err = t.store.walk(func(k string, it item) bool { out = append(out, rpcItem(k, it)); return true })
	if err != nil {
		return nil, fmt.Errorf("htable.dump %s: %w", args[0], err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// rpcReload is Kamailio's reload from the database; here the memory table's source is the snapshot file:
// the table is replaced by the items the file holds for it (what the last snapshot wrote, or an edited
// copy put in its place). A redis table is read from Redis at every access: nothing to reload.
func (h *Htable) rpcReload(args []string) (any, error) {
	t, err := h.rpcTable(args, 1, "htable name")
	if err != nil {
		return nil, err
	}
	ms, ok := t.store.(*memStore)
	if !ok {
		return "ok", nil
	}
	if h.snapPath == "" {
		return nil, errors.New("Htable reload failed: no snapshot_file")
	}
	// Load into a fresh store first, so that a file that cannot be read leaves the table as it was.
	fresh := newMemStore(t, &h.gen)
	n, err := h.readSnapshot(func(table string) *memStore {
		if table == t.name {
			return fresh
		}
		return nil
	})
	if err != nil && n == 0 {
		return nil, fmt.Errorf("Htable reload failed: %w", err)
	}
	ms.replace(fresh)
	return map[string]int{"items": n}, nil
}

func (h *Htable) rpcFlush(args []string) (any, error) {
	t, err := h.rpcTable(args, 1, "htable name")
	if err != nil {
		return nil, err
	}
	if err := t.store.reset(); err != nil {
		return nil, fmt.Errorf("htable.flush %s: %w", args[0], err)
	}
	return "ok", nil
}

// RPCTable is one table in htable.listTables.
type RPCTable struct {
	Name         string `json:"name"`
	Backend      string `json:"backend"`
	Expire       int    `json:"expire"`
	UpdateExpire int    `json:"updateexpire"`
	Size         int    `json:"size"`
	InitVal      *int64 `json:"initval,omitempty"`
}

func (h *Htable) rpcList(args []string) (any, error) {
	if h.tables == nil {
		return nil, errors.New("htable is not started")
	}
	out := []RPCTable{}
	for _, n := range h.names {
		c := h.tables[n].conf
		ue := 0
		if *c.UpdateExpire {
			ue = 1
		}
		out = append(out, RPCTable{Name: n, Backend: c.Backend, Expire: c.AutoExpire, UpdateExpire: ue,
			Size: 1 << c.Size, InitVal: c.InitVal})
	}
	return out, nil
}

// RPCStats is one table in htable.stats (Kamailio's name, slots, all; min and max per slot are left out:
// a Go map has no slot sizes to show).
type RPCStats struct {
	Name  string `json:"name"`
	Slots int    `json:"slots"`
	All   int    `json:"all"`
}

func (h *Htable) rpcStats(args []string) (any, error) {
	if h.tables == nil {
		return nil, errors.New("htable is not started")
	}
	out := []RPCStats{}
	for _, n := range h.names {
		t := h.tables[n]
		out = append(out, RPCStats{Name: n, Slots: t.slots, All: t.store.count()})
	}
	return out, nil
}
