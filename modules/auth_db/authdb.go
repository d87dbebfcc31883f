// Package authdb is Kamailio's auth_db module: digest authentication against stored credentials. The
// credentials come from a users file (CSV or TOML, re-read on reload) and, as a second source, from Redis
// hashes; the digest itself is verified by the auth module (which must be loaded), as auth_db does through
// Kamailio's auth API.
package authdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/rueidis"
	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/modules/auth"
)

func init() {
	engine.Register(engine.Module{Name: "auth_db", New: func() engine.Instance {
		return &AuthDB{RedisPrefix: "subscriber:", RedisTimeout: 50, RedisCacheTTL: 10}
	}, Requires: []string{"auth"}})
}

// AuthDB holds the module parameters and its running state.
type AuthDB struct {
	// UsersFile is a .csv or .toml file of users, relative to the configuration file; re-read on reload.
	UsersFile string `toml:"users_file" reload:"live"`
	// RedisURL (redis://[:password@]host:port[/db]) adds Redis hashes as a second source of credentials.
	RedisURL string `toml:"redis_url"`
	// RedisPrefix starts the key of a user's hash: PREFIX user@domain (use_domain) or PREFIX user.
	RedisPrefix string `toml:"redis_prefix"`
	// RedisTimeout bounds every Redis call, in milliseconds.
	RedisTimeout int `toml:"redis_timeout"`
	// RedisCacheTTL is how long, in seconds, an answer from Redis is cached in siplua (server-assisted
	// client-side caching: a change in Redis invalidates it at once).
	RedisCacheTTL int `toml:"redis_cache_ttl"`
	// UseDomain looks users up by user and domain, not by user alone (Kamailio use_domain).
	UseDomain bool `toml:"use_domain"`

	auth  *auth.Auth
	dir   string
	log   *slog.Logger
	users atomic.Pointer[users]
	mu    sync.Mutex // serializes reloads (ctl and config reload)
	redis atomic.Pointer[redisClient]
	stop  chan struct{}
	wg    sync.WaitGroup
}

type redisClient struct{ c rueidis.Client }

// Validate checks the parameters.
func (d *AuthDB) Validate() error {
	if d.UsersFile != "" {
		switch strings.ToLower(filepath.Ext(d.UsersFile)) {
		case ".csv", ".toml":
		default:
			return fmt.Errorf("users_file: expected a .csv or .toml file, got %q", d.UsersFile)
		}
	}
	if d.RedisURL != "" {
		if _, err := rueidis.ParseURL(d.RedisURL); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return fmt.Errorf("redis_url: expected redis://host:port[/db], got %q: %w", redactURL(d.RedisURL), err)
		}
	}
	if d.RedisTimeout < 1 || d.RedisTimeout > 10000 {
		return fmt.Errorf("redis_timeout: expected 1..10000 ms, got %d", d.RedisTimeout)
	}
	if d.RedisCacheTTL < 0 {
		return fmt.Errorf("redis_cache_ttl: expected seconds ≥ 0, got %d", d.RedisCacheTTL)
	}
	return nil
}

// Start finds the auth module, loads the users file and connects to Redis (in the background when Redis
// is not there yet: lookups meanwhile fail as a source error, -1).
func (d *AuthDB) Start(env *engine.Env) error {
	d.log = env.Log
	inst, ok := env.Engine.Module("auth")
	if !ok {
		return errors.New("auth_db needs the auth module: add a [modules.auth] table")
	}
	a, ok := inst.(*auth.Auth)
	if !ok {
		return fmt.Errorf("auth_db: module auth is a %T, not the digest auth module", inst)
	}
	d.auth = a
	if cfg := env.Engine.Config(); cfg != nil {
		d.dir = cfg.Dir
	}
	if d.UsersFile != "" {
		if _, err := d.load(d.UsersFile); err != nil {
			return err
		}
	}
	if d.UsersFile == "" && d.RedisURL == "" {
		d.log.Warn("no users_file and no redis_url: every user is unknown (-3)")
	}
	d.stop = make(chan struct{})
	if d.RedisURL != "" {
		if err := d.connect(); err != nil {
			d.log.Warn("redis not reachable, retrying in the background", "err", err)
			d.wg.Add(1)
			go d.reconnect()
		}
	}
	return nil
}

func (d *AuthDB) connect() error {
	opt, err := rueidis.ParseURL(d.RedisURL)
	if err != nil {
		return err
	}
	timeout := time.Duration(d.RedisTimeout) * time.Millisecond
	opt.Dialer.Timeout = max(timeout, time.Second)
	opt.ConnWriteTimeout = max(timeout, time.Second)
	opt.CacheSizeEachConn = 8 << 20
	opt.DisableCache = d.RedisCacheTTL == 0
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return err
	}
	d.redis.Store(&redisClient{c: c})
	d.log.Info("redis connected", "url", redactURL(d.RedisURL))
	return nil
}

func (d *AuthDB) reconnect() {
	defer d.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			if d.connect() == nil {
				return
			}
		}
	}
}

// redactURL drops a password from a redis URL before it is logged.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndexByte(s[i+3:], '@'); j >= 0 {
			return s[:i+3] + "***@" + s[i+3+j+1:]
		}
	}
	return s
}

// Stop closes the Redis client.
func (d *AuthDB) Stop() error {
	if d.stop != nil {
		close(d.stop)
		d.wg.Wait()
		d.stop = nil
	}
	if r := d.redis.Swap(nil); r != nil {
		r.c.Close()
	}
	return nil
}

// Reload re-reads the users file (engine.FileReloader: on every reload, even when users_file did not
// change); a broken file fails the reload and the loaded users keep serving.
func (d *AuthDB) Reload(next engine.Instance) error {
	n, ok := next.(*AuthDB)
	if !ok {
		return fmt.Errorf("auth_db: reload with a %T", next)
	}
	if n.UsersFile == "" {
		if d.users.Load() != nil {
			return errors.New("users_file: cannot be removed by a reload (restart siplua)")
		}
		return nil
	}
	if _, err := d.load(n.UsersFile); err != nil {
		return err
	}
	return nil
}

// ReloadsFiles marks AuthDB as an engine.FileReloader.
func (d *AuthDB) ReloadsFiles() {}

func (d *AuthDB) load(file string) (*users, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := file
	if !filepath.IsAbs(path) && d.dir != "" {
		path = filepath.Join(d.dir, path)
	}
	u, err := loadUsers(path)
	if err != nil {
		return nil, err
	}
	if len(u.dups) > 0 && !d.UseDomain {
		d.log.Warn("users listed in several domains while use_domain = false: the first row of each is used",
			"users", strings.Join(u.dups, ","))
	}
	d.users.Store(u)
	d.log.Info("users loaded", "file", path, "users", u.n)
	return u, nil
}

// RPC: auth_db.reload re-reads the users file.
func (d *AuthDB) RPC() []engine.Command {
	return []engine.Command{{
		Name: "auth_db.reload",
		Help: "re-read the users file",
		Fn: func([]string) (any, error) {
			cur := d.users.Load()
			if cur == nil {
				return nil, errors.New("no users_file configured")
			}
			u, err := d.load(cur.file)
			if err != nil {
				return nil, err
			}
			return map[string]any{"file": u.file, "users": u.n}, nil
		},
	}}
}

// Gauges: the users loaded from the file.
func (d *AuthDB) Gauges() []engine.Gauge {
	return []engine.Gauge{{Name: "auth_db_users", Help: "Users loaded from the auth_db users file.",
		Value: func() float64 {
			if u := d.users.Load(); u != nil {
				return float64(u.n)
			}
			return 0
		}}}
}

// Exports: KSR.auth_db.*.
func (d *AuthDB) Exports() []engine.Export {
	www := func(m *engine.Msg, realm, table string) int { return d.authenticate(m, realm, table, auth.WWW) }
	proxy := func(m *engine.Msg, realm, table string) int { return d.authenticate(m, realm, table, auth.Proxy) }
	return []engine.Export{
		{Name: "auth_check", Fn: d.authCheck},
		{Name: "www_authenticate", Fn: www},
		{Name: "www_authorize", Fn: www},
		{Name: "proxy_authenticate", Fn: proxy},
		{Name: "proxy_authorize", Fn: proxy},
		{Name: "is_subscriber", Fn: d.isSubscriber},
	}
}

// lookup finds a user: the users file first, then Redis. The domain is the username's own (user@domain)
// or else the realm, as Kamailio's auth_db; without use_domain only the user is matched.
func (d *AuthDB) lookup(u auth.Username, realm string) (auth.Secret, bool, error) {
	domain := u.Domain
	if domain == "" {
		domain = realm
	}
	return d.find(u.User, domain, d.UseDomain)
}

func (d *AuthDB) find(user, domain string, useDomain bool) (auth.Secret, bool, error) {
	if user == "" {
		return auth.Secret{}, false, nil
	}
	if s, ok := d.users.Load().get(user, domain, useDomain); ok {
		return s, true, nil
	}
	if d.RedisURL == "" {
		return auth.Secret{}, false, nil
	}
	return d.redisGet(user, domain, useDomain)
}

// redisGet reads HGETALL PREFIX user[@domain] within redis_timeout, through the client-side cache.
func (d *AuthDB) redisGet(user, domain string, useDomain bool) (auth.Secret, bool, error) {
	r := d.redis.Load()
	if r == nil {
		return auth.Secret{}, false, errors.New("redis not connected")
	}
	key := d.RedisPrefix + user
	if useDomain {
		key += "@" + strings.ToLower(domain)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(d.RedisTimeout)*time.Millisecond)
	defer cancel()
	cmd := r.c.B().Hgetall().Key(key).Cache()
	var res rueidis.RedisResult
	if d.RedisCacheTTL > 0 {
		res = r.c.DoCache(ctx, cmd, time.Duration(d.RedisCacheTTL)*time.Second)
	} else {
		res = r.c.Do(ctx, r.c.B().Hgetall().Key(key).Build())
	}
	h, err := res.AsStrMap()
	if err != nil {
		return auth.Secret{}, false, fmt.Errorf("redis HGETALL %s: %w", key, err)
	}
	if len(h) == 0 {
		return auth.Secret{}, false, nil
	}
	s := auth.Secret{Password: h["password"], HA1MD5: h["ha1"], HA1SHA256: h["ha1_sha256"]}
	if s.Password == "" && s.HA1MD5 == "" && s.HA1SHA256 == "" {
		return auth.Secret{}, false, fmt.Errorf("redis %s: expected a password, ha1 or ha1_sha256 field, got none", key)
	}
	return s, true, nil
}

// authenticate is www_authenticate / proxy_authenticate (aliases www_authorize / proxy_authorize).
func (d *AuthDB) authenticate(m *engine.Msg, realm, table string, hf auth.HF) int {
	if table == "" {
		d.log.Error("invalid table parameter: empty")
		return auth.Error
	}
	return d.auth.Authenticate(m, realm, hf, d.lookup).Code
}

// authCheck is auth_check(realm, table, flags): www for REGISTER, proxy otherwise; flags 1 checks the
// auth user against From/To (and the R-URI for PUBLISH), 2 skips that for INVITE, BYE, PRACK, UPDATE and
// MESSAGE; ACK and CANCEL pass.
func (d *AuthDB) authCheck(m *engine.Msg, realm, table string, flags int) int {
	if m.Request() == nil {
		return auth.Error
	}
	switch m.Method() {
	case "ACK", "CANCEL":
		return auth.OK
	}
	if table == "" {
		d.log.Error("invalid table parameter: empty")
		return auth.Error
	}
	hf := auth.Proxy
	if m.Method() == "REGISTER" {
		hf = auth.WWW
	}
	res := d.auth.Authenticate(m, realm, hf, d.lookup)
	if res.Code != auth.OK || flags&1 == 0 || res.Username.Whole == "" {
		return res.Code
	}
	return auth.CheckIdentity(m, res.Username, d.UseDomain, flags&2 != 0)
}

// isSubscriber is is_subscriber(uri, table, flags): 1 when the URI's user exists (flags&1: user and
// domain), -2 when not, -1 on a bad URI or a failed source. Credentials are not loaded into variables
// (Kamailio's load_credentials is not supported), so flag 2 changes nothing.
func (d *AuthDB) isSubscriber(m *engine.Msg, uri, table string, flags int) int {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil || u.User == "" || table == "" {
		return auth.Error
	}
	_, found, err := d.find(u.User, u.Host, flags&1 != 0)
	switch {
	case err != nil:
		d.log.Warn("is_subscriber lookup failed", "err", err)
		return auth.Error
	case !found:
		return -2
	}
	return auth.OK
}
