// Package ndb_redis runs Redis commands from the script (Kamailio's ndb_redis): redis_cmd(server, command,
// reply) stores the reply under a name that $redis(name=>value), $redis(name=>type)... read. Connections are
// pooled and pipelined by the Redis client (rueidis), and every command is bounded by cmd_timeout, so a
// slow or dead Redis costs a route at most that long. redis_cmd_async (siplua) suspends the transaction
// instead (tm's t_suspend) and runs a route with the reply, so the worker is not held at all.
package ndb_redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/siplua/siplua/engine"
)

const modName = "ndb_redis"

func init() {
	engine.Register(engine.Module{Name: modName, After: []string{"tm"}, New: func() engine.Instance { return New() }})
}

// New returns the module with Kamailio's defaults.
func New() *NDBRedis { return &NDBRedis{CmdTimeout: 1000, ConnectTimeout: 1000, MaxInflight: 1024} }

// NDBRedis holds the parameters (Kamailio's names).
type NDBRedis struct {
	// Server lists the servers: "name=srv1;addr=127.0.0.1;port=6379;db=0[;pass=secret]".
	Server []string `toml:"server"`
	// CmdTimeout bounds a command (ms; Kamailio cmd_timeout).
	CmdTimeout int `toml:"cmd_timeout"`
	// ConnectTimeout bounds connecting (ms; Kamailio connect_timeout).
	ConnectTimeout int `toml:"connect_timeout"`
	// MaxInflight bounds redis_cmd_async commands waiting for their reply.
	MaxInflight int `toml:"max_inflight"`

	e        *engine.Engine
	log      *slog.Logger
	mu       sync.Mutex
	servers  map[string]*server
	inflight chan struct{}
}

type server struct {
	name      string
	opt       rueidis.ClientOption
	mu        sync.Mutex
	c         rueidis.Client // nil until the first command connects
	downUntil time.Time      // after a failed connect, commands fail at once until then
}

// reconnectBackoff: after a failed connect, commands fail at once this long instead of each waiting
// connect_timeout for a server that is down.
const reconnectBackoff = time.Second

func parseServer(s string) (*server, error) {
	srv := &server{}
	host, port, db, pass := "127.0.0.1", "6379", 0, ""
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			return nil, fmt.Errorf("server %q: expected key=value, got %q", s, kv)
		}
		switch k {
		case "name":
			srv.name = v
		case "addr":
			host = v
		case "port":
			port = v
		case "db":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("server %q: db: expected a number, got %q", s, v)
			}
			db = n
		case "pass":
			pass = v
		default:
			return nil, fmt.Errorf("server %q: unknown key %q (name, addr, port, db, pass)", s, k)
		}
	}
	if srv.name == "" {
		return nil, fmt.Errorf("server %q: expected name=...", s)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("server %q: port: expected a number, got %q", s, port)
	}
	srv.opt = rueidis.ClientOption{InitAddress: []string{host + ":" + port}, SelectDB: db, Password: pass,
		DisableCache: true, AlwaysRESP2: true}
	return srv, nil
}

// Validate checks the parameters.
func (r *NDBRedis) Validate() error {
	seen := map[string]bool{}
	for _, s := range r.Server {
		srv, err := parseServer(s)
		if err != nil {
			return err
		}
		if seen[srv.name] {
			return fmt.Errorf("server: name %q is used twice", srv.name)
		}
		seen[srv.name] = true
	}
	if r.CmdTimeout < 1 || r.ConnectTimeout < 1 {
		return fmt.Errorf("cmd_timeout, connect_timeout: expected >= 1 ms, got %d, %d", r.CmdTimeout, r.ConnectTimeout)
	}
	if r.MaxInflight < 1 {
		return fmt.Errorf("max_inflight: expected >= 1, got %d", r.MaxInflight)
	}
	return nil
}

// Start prepares the servers (they connect on their first command, so a Redis down at start only fails
// the commands until it is up).
func (r *NDBRedis) Start(env *engine.Env) error {
	r.e, r.log = env.Engine, env.Log
	r.servers = map[string]*server{}
	r.inflight = make(chan struct{}, r.MaxInflight)
	for _, s := range r.Server {
		srv, _ := parseServer(s)
		srv.opt.Dialer.Timeout = time.Duration(r.ConnectTimeout) * time.Millisecond
		srv.opt.ConnWriteTimeout = max(time.Duration(r.CmdTimeout)*time.Millisecond, time.Second)
		r.servers[srv.name] = srv
	}
	return nil
}

// Stop closes the connections.
func (r *NDBRedis) Stop() error {
	for _, s := range r.servers {
		s.mu.Lock()
		if s.c != nil {
			s.c.Close()
		}
		s.mu.Unlock()
	}
	return nil
}

func (r *NDBRedis) logger() *slog.Logger {
	if r.log == nil {
		return slog.Default()
	}
	return r.log
}

// Exports: KSR.ndb_redis.*.
func (r *NDBRedis) Exports() []engine.Export {
	return []engine.Export{
		{Name: "redis_cmd", Fn: r.cmd},
		{Name: "redis_free", Fn: func(m *engine.Msg, name string) int {
			if rs := replies(m, false); rs != nil {
				delete(rs.m, name)
			}
			return 1
		}},
		{Name: "redis_cmd_async", Fn: r.cmdAsync},
	}
}

func (s *server) client() (rueidis.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	if time.Now().Before(s.downUntil) {
		return nil, errDown
	}
	c, err := rueidis.NewClient(s.opt)
	if err != nil {
		s.downUntil = time.Now().Add(reconnectBackoff)
		return nil, err
	}
	s.c = c
	return c, nil
}

// reply is one stored reply (Kamailio's redis reply types: 1 string, 2 array, 3 integer, 4 nil, 5 status,
// 6 error).
type reply struct {
	typ   int
	str   string
	num   int64
	items []reply
	info  string
}

const (
	typeString  = 1
	typeArray   = 2
	typeInteger = 3
	typeNil     = 4
	typeError   = 6
)

func convert(msg rueidis.RedisMessage, depth int) reply {
	if err := msg.Error(); err != nil {
		if rueidis.IsRedisNil(err) {
			return reply{typ: typeNil}
		}
		return reply{typ: typeError, info: err.Error(), str: err.Error()}
	}
	switch {
	case msg.IsInt64():
		n, _ := msg.AsInt64()
		return reply{typ: typeInteger, num: n}
	case msg.IsString():
		s, _ := msg.ToString()
		return reply{typ: typeString, str: s, info: s}
	case msg.IsArray() && depth < 8:
		arr, _ := msg.ToArray()
		out := reply{typ: typeArray, items: make([]reply, len(arr))}
		for i := range arr {
			out.items[i] = convert(arr[i], depth+1)
		}
		return out
	}
	s, err := msg.ToString()
	if err != nil {
		return reply{typ: typeNil}
	}
	return reply{typ: typeString, str: s}
}

// replySet holds a message's replies by name; the mutex is for the async form, whose reply is written by
// another goroutine before the resume route reads it.
type replySet struct {
	mu sync.Mutex
	m  map[string]reply
}

func replies(m *engine.Msg, create bool) *replySet {
	rs, _ := m.ModState(modName).(*replySet)
	if rs == nil && create {
		rs = &replySet{m: map[string]reply{}}
		m.SetModState(modName, rs)
	}
	return rs
}

// split turns "HSET key field value" into arguments (spaces separate; Kamailio's format strings with %s
// are not needed in Lua, which builds the string).
func split(cmd string) []string { return strings.Fields(cmd) }

var (
	errNoServer = errors.New("unknown redis server")
	errDown     = errors.New("redis server unreachable (retrying in a second)")
)

func (r *NDBRedis) do(name string, args []string) (reply, error) {
	srv := r.servers[name]
	if srv == nil {
		return reply{}, errNoServer
	}
	c, err := srv.client()
	if err != nil {
		return reply{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.CmdTimeout)*time.Millisecond)
	defer cancel()
	res := c.Do(ctx, c.B().Arbitrary(args...).Build())
	if err := res.NonRedisError(); err != nil {
		return reply{}, err
	}
	msg, _ := res.ToMessage()
	return convert(msg, 0), nil
}

// cmd is redis_cmd(server, command, reply): 1 done (a Redis error reply is stored as type 6), -1 unknown
// server, empty command, connection failure or timeout (cmd_timeout).
func (r *NDBRedis) cmd(m *engine.Msg, srv, command, name string) int {
	args := split(command)
	if len(args) == 0 || name == "" {
		return -1
	}
	rep, err := r.do(srv, args)
	if err != nil {
		r.logger().Info("redis command failed", "server", srv, "command", args[0], "err", err)
		return -1
	}
	rs := replies(m, true)
	rs.mu.Lock()
	rs.m[name] = rep
	rs.mu.Unlock()
	return 1
}

// suspender is what the async form needs from tm (t_suspend / t_continue).
type suspender interface {
	Suspend(m *engine.Msg) (index, label uint32, err error)
	Continue(index, label uint32, route string) error
}

// cmdAsync is redis_cmd_async(server, command, route) (siplua): the transaction is suspended and route
// runs on a worker with the reply stored under the route's name ($redis(route=>value)); a failure stores
// a type 6 reply with the error. 0 suspended (end the route), -1 not (no tm suspend, unknown server, too
// many commands waiting).
func (r *NDBRedis) cmdAsync(m *engine.Msg, srv, command, route string) int {
	name := route
	args := split(command)
	if len(args) == 0 || name == "" || route == "" || r.servers[srv] == nil {
		return -1
	}
	var s suspender
	if inst, ok := r.e.Module("tm"); ok {
		s, _ = inst.(suspender)
	}
	if s == nil || !m.IsRequest() {
		return -1
	}
	select {
	case r.inflight <- struct{}{}:
	default:
		return -1
	}
	rs := replies(m, true) // before Suspend: the parked request carries the pointer
	index, label, err := s.Suspend(m)
	if err != nil {
		<-r.inflight
		return -1
	}
	go func() { // bounded by max_inflight: one goroutine per command waiting on Redis
		defer func() { <-r.inflight }()
		rep, err := r.do(srv, args)
		if err != nil {
			rep = reply{typ: typeError, info: err.Error(), str: err.Error()}
		}
		rs.mu.Lock()
		rs.m[name] = rep
		rs.mu.Unlock()
		if err := s.Continue(index, label, route); err != nil {
			r.logger().Info("redis reply came for a transaction that ended", "err", err)
		}
	}()
	return 0
}

// PVs: $redis(name=>type|value|info|size|value[n]|type[n]).
func (r *NDBRedis) PVs() []engine.PV {
	return []engine.PV{{Name: "redis", Get: func(m *engine.Msg, arg string) engine.Value {
		name, key, ok := strings.Cut(arg, "=>")
		if !ok {
			return engine.Value{}
		}
		rs := replies(m, false)
		if rs == nil {
			return engine.Value{}
		}
		rs.mu.Lock()
		rep, ok := rs.m[strings.TrimSpace(name)]
		rs.mu.Unlock()
		if !ok {
			return engine.Value{}
		}
		key = strings.TrimSpace(key)
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			n, err := strconv.Atoi(key[i+1 : len(key)-1])
			if err != nil || rep.typ != typeArray || n < 0 || n >= len(rep.items) {
				return engine.Value{}
			}
			rep, key = rep.items[n], key[:i]
		}
		switch key {
		case "type":
			return engine.IntVal(int64(rep.typ))
		case "value":
			switch rep.typ {
			case typeInteger:
				return engine.IntVal(rep.num)
			case typeString, typeError:
				return engine.StrVal(rep.str)
			}
			return engine.Value{}
		case "info":
			if rep.info == "" {
				return engine.Value{}
			}
			return engine.StrVal(rep.info)
		case "size":
			if rep.typ == typeArray {
				return engine.IntVal(int64(len(rep.items)))
			}
			return engine.IntVal(0)
		}
		return engine.Value{}
	}}}
}
