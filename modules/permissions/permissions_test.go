package permissions_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
)

const tableCfg = `[modules.pv]
[modules.permissions]
peer_tag_avp = "$avp(peer)"
address_file = "address.list"
[[modules.permissions.address]]
group = 1
cidr = "10.0.0.0/8"
tag = "ten"
[[modules.permissions.address]]
group = 1
cidr = "192.168.1.10"
port = 5060
proto = "udp"
tag = "pbx-udp"
[[modules.permissions.address]]
group = 2
cidr = "2001:db8::/32"
tag = "v6net"
[[modules.permissions.address]]
group = 3
cidr = "2001:db8::5"
port = 5070
proto = "tcp"
tag = "v6host"
[[modules.permissions.address]]
group = 4
cidr = "10.1.0.0/16"
`

// Kamailio's address file: grp ip mask port tag.
const addressList = `# grp ip mask port tag
5 172.16.0.0 12 0 private
6 203.0.113.7 0 5080 carrier
6 gw.example.net 0 0 named
`

const req = "OPTIONS sip:x@example.net SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\n" +
	"To: <sip:x@example.net>\nCall-ID: c@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"

func TestAddressTable(t *testing.T) {
	p := enginetest.StartFiles(t, tableCfg, map[string]string{"script.lua": "function ksr_request_route() end", "address.list": addressList})
	fn := func(name string) any { return p.Export(t, "permissions", name) }
	for _, c := range []struct {
		name  string
		src   string
		proto engine.Proto
		fn    string
		args  []any
		want  string
		tag   string
	}{
		{"subnet v4", "10.9.8.7:1234", engine.UDP, "allow_source_address", []any{1}, "number:1", "ten"},
		{"subnet other group", "10.9.8.7:1234", engine.UDP, "allow_source_address", []any{2}, "number:-1", ""},
		{"outside", "11.0.0.1:5060", engine.UDP, "allow_source_address", []any{1}, "number:-1", ""},
		{"host port proto ok", "192.168.1.10:5060", engine.UDP, "allow_source_address", []any{1}, "number:1", "pbx-udp"},
		{"host wrong port", "192.168.1.10:5061", engine.UDP, "allow_source_address", []any{1}, "number:-1", ""},
		{"host wrong proto", "192.168.1.10:5060", engine.TCP, "allow_source_address", []any{1}, "number:-1", ""},
		{"subnet v6", "[2001:db8:1::9]:5060", engine.TCP, "allow_source_address", []any{2}, "number:1", "v6net"},
		{"host v6", "[2001:db8::5]:5070", engine.TCP, "allow_source_address", []any{3}, "number:1", "v6host"},
		{"host v6 wrong proto", "[2001:db8::5]:5070", engine.UDP, "allow_source_address", []any{3}, "number:-1", ""},
		{"v4-mapped source", "[::ffff:10.1.2.3]:5060", engine.UDP, "allow_source_address", []any{4}, "number:1", ""},
		{"group: exact first", "[2001:db8::5]:5070", engine.TCP, "allow_source_address_group", nil, "number:3", "v6host"},
		{"group: lowest subnet group", "10.1.2.3:5060", engine.UDP, "allow_source_address_group", nil, "number:1", "ten"},
		{"group: none", "8.8.8.8:53", engine.UDP, "allow_source_address_group", nil, "number:-1", ""},
		{"file subnet", "172.20.1.1:9", engine.UDP, "allow_source_address", []any{5}, "number:1", "private"},
		{"address", "8.8.8.8:53", engine.UDP, "allow_address", []any{6, "203.0.113.7", 5080}, "number:1", "carrier"},
		{"address wrong port", "8.8.8.8:53", engine.UDP, "allow_address", []any{6, "203.0.113.7", 5081}, "number:-1", ""},
		// a given address has no transport: an entry for one protocol only does not match it
		{"address proto-bound", "8.8.8.8:53", engine.UDP, "allow_address", []any{1, "192.168.1.10", 5060}, "number:-1", ""},
		{"address v6", "8.8.8.8:53", engine.UDP, "allow_address", []any{2, "[2001:db8::77]", 0}, "number:1", "v6net"},
		{"address name", "8.8.8.8:53", engine.UDP, "allow_address", []any{6, "GW.example.net", 5060}, "number:1", "named"},
		{"address garbage", "8.8.8.8:53", engine.UDP, "allow_address", []any{6, "not an ip", 5060}, "number:-1", ""},
		{"address group", "8.8.8.8:53", engine.UDP, "allow_address_group", []any{"172.31.255.255", 1}, "number:5", "private"},
		{"address group none", "8.8.8.8:53", engine.UDP, "allow_address_group", []any{"1.1.1.1", 1}, "number:-1", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := p.E.NewMsg([]byte(enginetest.CRLF(req)), netip.MustParseAddrPort(c.src), c.proto)
			if err != nil {
				t.Fatal(err)
			}
			if got := enginetest.Call(t, fn(c.fn), m, c.args...); got != c.want {
				t.Errorf("%s%v from %s/%s = %s, want %s", c.fn, c.args, c.src, c.proto, got, c.want)
			}
			tag := ""
			if v := m.AVPs["peer"]; len(v) > 0 {
				tag = v[len(v)-1].S
			}
			if tag != c.tag {
				t.Errorf("$avp(peer) = %q, want %q", tag, c.tag)
			}
		})
	}
}

const wireScript = `
function ksr_request_route()
	local g = KSR.permissions.allow_source_address_group()
	KSR.hdr.append_to_reply("X-Group: " .. g .. "\r\nX-Tag: " .. (KSR.pv.get("$avp(peer)") or "-") .. "\r\n")
	if KSR.permissions.allow_source_address(1) > 0 then
		KSR.sl.sl_send_reply(200, "Allowed")
	else
		KSR.sl.sl_send_reply(403, "Forbidden")
	end
end
`

// TestOnTheWire: requests from 127.0.0.1 over UDP and TCP are allowed or refused by the table, and a
// permissions.addressReload (and a config reload) applies a changed address file at once.
func TestOnTheWire(t *testing.T) {
	cfg := "[modules.sl]\n[modules.pv]\n[modules.hdr]\n[modules.permissions]\npeer_tag_avp = \"$avp(peer)\"\naddress_file = \"address.csv\"\n"
	p := enginetest.StartFiles(t, cfg, map[string]string{"script.lua": wireScript,
		"address.csv": "grp,ip_addr,mask,port,tag,proto\n1,127.0.0.1,32,0,loop-tcp,tcp\n"})
	ask := func(c *enginetest.Client) string {
		c.Send(c.Request("OPTIONS", "sip:x@example.net"))
		r := c.RecvResponse(2 * time.Second)
		g, tg := "", ""
		if h := r.GetHeader("X-Group"); h != nil {
			g = h.Value()
		}
		if h := r.GetHeader("X-Tag"); h != nil {
			tg = h.Value()
		}
		return strings.Join([]string{r.StartLine(), g, tg}, " | ")
	}
	udp, tcp := p.UDPClient(t), p.TCPClient(t)
	if got := ask(udp); got != "SIP/2.0 403 Forbidden | -1 | -" {
		t.Errorf("UDP before: %s", got)
	}
	if got := ask(tcp); got != "SIP/2.0 200 Allowed | 1 | loop-tcp" {
		t.Errorf("TCP before: %s", got)
	}
	path := filepath.Join(p.Dir, "address.csv")
	if err := os.WriteFile(path, []byte("1,127.0.0.0,8,0,loopnet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inst, _ := p.E.Module("permissions")
	var reload func([]string) (any, error)
	for _, c := range inst.(engine.Commander).RPC() {
		if c.Name == "permissions.addressReload" {
			reload = c.Fn
		}
	}
	if _, err := reload(nil); err != nil {
		t.Fatal(err)
	}
	if got := ask(udp); got != "SIP/2.0 200 Allowed | 1 | loopnet" {
		t.Errorf("UDP after addressReload: %s", got)
	}
	// a broken file keeps the table in use
	if err := os.WriteFile(path, []byte("one,127.0.0.1,0,0,bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reload(nil); err == nil || !strings.Contains(err.Error(), "address.csv:1") {
		t.Errorf("broken file: err = %v", err)
	}
	if got := ask(udp); got != "SIP/2.0 200 Allowed | 1 | loopnet" {
		t.Errorf("UDP after a failed reload: %s", got)
	}
	// a config reload re-reads the file
	if err := os.WriteFile(path, []byte("2,127.0.0.1,0,0,two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := engine.LoadConfigFile(filepath.Join(p.Dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Listen = p.E.Config().Listen
	if _, err := p.E.Reload(c); err != nil {
		t.Fatal(err)
	}
	if got := ask(tcp); got != "SIP/2.0 403 Forbidden | 2 | two" {
		t.Errorf("TCP after config reload: %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg, err string
	}{
		{"[modules.permissions]\n[[modules.permissions.address]]\ngroup = 1\ncidr = \"10.0.0.0/33\"\n", "address[0]: cidr"},
		{"[modules.permissions]\n[[modules.permissions.address]]\ngroup = 1\ncidr = \"10.0.0.1\"\nport = 70000\n", "port"},
		{"[modules.permissions]\n[[modules.permissions.address]]\ngroup = 1\ncidr = \"10.0.0.1\"\nproto = \"sctpx\"\n", "proto"},
		{"[modules.permissions]\npeer_tag_avp = \"peer\"\n", "peer_tag_avp"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(path, []byte("[lua]\nscript = \"s.lua\"\n"+c.cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "s.lua"), []byte("function ksr_request_route() end"), 0o644)
		_, err := engine.LoadConfigFile(path)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: err = %v, want %q", c.cfg, err, c.err)
		}
	}
}

func BenchmarkAllowSourceAddress(b *testing.B) {
	var cfg strings.Builder
	cfg.WriteString("[modules.permissions]\n")
	for i := 0; i < 200; i++ {
		cfg.WriteString("[[modules.permissions.address]]\ngroup = 1\ncidr = \"10." + itoa(i) + ".0.0/16\"\n")
		cfg.WriteString("[[modules.permissions.address]]\ngroup = 2\ncidr = \"192.168." + itoa(i) + ".1\"\n")
	}
	p := enginetest.Start(b, cfg.String(), "function ksr_request_route() end")
	allow := p.Export(b, "permissions", "allow_source_address").(func(*engine.Msg, int) int)
	for _, c := range []struct{ name, src string }{{"exact", "192.168.100.1:5060"}, {"subnet-last", "10.199.3.4:5060"}, {"miss", "8.8.8.8:5060"}} {
		m, _ := p.E.NewMsg([]byte(enginetest.CRLF(req)), netip.MustParseAddrPort(c.src), engine.UDP)
		grp := 2
		if c.name != "exact" {
			grp = 1
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				allow(m, grp)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
