package corex

import (
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/siplua/siplua/engine"
)

// The rest of Kamailio 5.6's corex KEMI functions. Named sockets, forcing the receive or send socket of a
// message and the Via server-id / xavp options have no counterpart in siplua's configuration: they are
// accepted (1, Kamailio's success) and change nothing; the README lists them.

// maxFileRead bounds file_read: the file is read in the route.
const maxFileRead = 1 << 20

// corexState is kept per message (engine.Msg.ModState("corex")).
type corexState struct{ xflags uint64 }

func stateOf(m *engine.Msg) *corexState {
	if s, ok := m.ModState("corex").(*corexState); ok {
		return s
	}
	s := &corexState{}
	m.SetModState("corex", s)
	return s
}

func moreExports() []engine.Export {
	one := func(*engine.Msg, string) int { return 1 }
	oneI := func(*engine.Msg, int) int { return 1 }
	return []engine.Export{
		{Name: "file_read", Fn: fileRead},
		{Name: "file_write", Fn: fileWrite},
		{Name: "has_user_agent", Fn: func(m *engine.Msg) int {
			if _, ok := m.Header("user-agent"); ok {
				return 1
			}
			return -1
		}},
		{Name: "is_faked_msg", Fn: func(m *engine.Msg) int { return -1 }},
		{Name: "is_socket_name", Fn: func(m *engine.Msg, name string) int { return -1 }},
		{Name: "setxflag", Fn: func(m *engine.Msg, f int) int { return xflag(m, f, 1) }},
		{Name: "resetxflag", Fn: func(m *engine.Msg, f int) int { return xflag(m, f, 0) }},
		{Name: "isxflagset", Fn: func(m *engine.Msg, f int) int { return xflag(m, f, -1) }},
		{Name: "send_data", Fn: func(m *engine.Msg, uri, data string) int { return sendData(m, uri, "", data) }},
		{Name: "sendx", Fn: sendData},
		{Name: "set_source_address", Fn: setSourceAddress},
		{Name: "set_recv_socket", Fn: one},
		{Name: "set_recv_socket_name", Fn: one},
		{Name: "set_send_socket", Fn: one},
		{Name: "set_send_socket_name", Fn: one},
		{Name: "via_add_srvid", Fn: oneI},
		{Name: "via_add_xavp_params", Fn: oneI},
		{Name: "via_use_xavp_fields", Fn: oneI},
	}
}

// fileRead is file_read(path): the file's content (at most 1 MiB), "" when it cannot be read (as Kamailio
// 5.6, which returns an empty string, not nil).
func fileRead(m *engine.Msg, path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", true
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileRead))
	if err != nil {
		return "", true
	}
	return string(b), true
}

// fileWrite is file_write(path, content): the file is replaced by content; 1, -1 on error.
func fileWrite(m *engine.Msg, path, content string) int {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return -1
	}
	return 1
}

// xflag sets (1), resets (0) or tests (-1) extended flag f (0..63), kept for the message.
func xflag(m *engine.Msg, f, op int) int {
	if f < 0 || f > 63 {
		return -1
	}
	s := stateOf(m)
	switch op {
	case 1:
		s.xflags |= 1 << uint(f)
	case 0:
		s.xflags &^= 1 << uint(f)
	default:
		if s.xflags&(1<<uint(f)) == 0 {
			return -1
		}
	}
	return 1
}

// sendData is send_data(uri, data) / sendx(uri, socket, data): data goes as it is to the address of uri
// (an IP address; its transport param picks TCP), from socket "proto:ip:port" when given. 1, -1 on error.
func sendData(m *engine.Msg, uri, socket, data string) int {
	d, err := engine.ParseDest(uri)
	if err != nil {
		return -1
	}
	tg, ok := d.Literal()
	if !ok {
		return -1 // a name would need a DNS lookup in the route
	}
	var prefer *engine.Listener
	if socket != "" {
		prefer = listenerByName(m, socket)
		if prefer == nil {
			return -1
		}
	}
	if err := m.E.Send(tg.Proto, prefer, tg.Addr, []byte(data)); err != nil {
		return -1
	}
	return 1
}

func listenerByName(m *engine.Msg, s string) *engine.Listener { return m.E.ListenerByName(s) }

// setSourceAddress is set_source_address("[proto:]ip:port"): the message counts as received from there
// ($si, $sp, replies to a UDP request without rport).
func setSourceAddress(m *engine.Msg, addr string) int {
	a := addr
	if p, rest, ok := strings.Cut(a, ":"); ok {
		if _, ok := engine.ParseProto(p); ok {
			a = rest
		}
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		ip, err2 := netip.ParseAddr(strings.Trim(a, "[]"))
		if err2 != nil {
			return -1
		}
		ap = netip.AddrPortFrom(ip, 5060)
	}
	m.Src = ap
	return 1
}
