package enginetest

import (
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Redis is a real redis-server started for a test: on a free 127.0.0.1 port, in a temp dir, without
// persistence, killed when the test ends. Tests of Redis-backed features use it (never a mock).
type Redis struct {
	t    testing.TB
	bin  string
	Port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// StartRedis starts redis-server (skipping the test when it is not installed, failing when CI=true).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := NewRedis(t)
	r.Start()
	return r
}

// NewRedis picks the port of a redis-server without starting it (a test of what happens before Redis
// comes up); Start starts it.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: NeedProgram(t, "redis-server", "redis-server"), Port: FreePort(t), dir: t.TempDir()}
	t.Cleanup(r.Kill)
	return r
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// URL is the redis:// URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start (re)starts the server on its port and waits until it accepts connections; after Kill it comes
// back empty (no persistence), as a crashed server without a dump would.
func (r *Redis) Start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
			c.Close()
			return
		}
	}
	r.t.Fatalf("redis-server on %s did not start listening", r.Addr())
}

// Kill stops the server at once (SIGKILL: no goodbye to the clients, like a crash). It may be called
// more than once.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}
