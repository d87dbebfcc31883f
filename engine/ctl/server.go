// Package ctl is siplua's control socket: JSON-RPC 2.0 over a unix stream socket, in the spirit of
// Kamailio's jsonrpcs. Each request is one JSON object; each answer is one JSON object on its own line.
// Methods are engine.Commands: the built-in ones (Builtin) and those modules offer.
package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/siplua/siplua/engine"
)

// JSON-RPC 2.0 error codes; command failures use 500 as Kamailio's RPC does.
const (
	CodeParse          = -32700
	CodeInvalidRequest = -32600
	CodeNotFound       = -32601
	CodeInvalidParams  = -32602
	CodeFailed         = 500
)

// Error is a JSON-RPC error object. Commands return it to choose the code or attach details (Data).
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string {
	if lines := e.Lines(); len(lines) > 0 {
		return e.Message + ":\n" + strings.Join(lines, "\n")
	}
	return e.Message
}

// Lines returns Data when it is a list of strings (problems as file:line: message), else nil.
func (e *Error) Lines() []string {
	switch d := e.Data.(type) {
	case []string:
		return d
	case []any:
		lines := make([]string, 0, len(d))
		for _, x := range d {
			s, ok := x.(string)
			if !ok {
				return nil
			}
			lines = append(lines, s)
		}
		return lines
	}
	return nil
}

// Limits keep a misbehaving client from holding resources.
const (
	maxConns    = 16
	maxRequest  = 1 << 20
	idleTimeout = 2 * time.Minute
)

// Server serves commands on a unix socket.
type Server struct {
	ln   net.Listener
	path string
	log  *slog.Logger

	mu     sync.Mutex
	cmds   map[string]engine.Command
	conns  map[net.Conn]struct{}
	closed bool // no connection is added once Close waits for them
	slots  chan struct{}
	wg     sync.WaitGroup
}

// Listen binds the socket at path with mode 0600. A stale socket file (nothing listening) is replaced; a
// live one or a file that is not a socket is an error.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("ctl socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("ctl socket %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("ctl socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("ctl socket: %w", err)
	}
	// The socket controls the proxy: only its owner may connect.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("ctl socket %s: chmod: %w", path, err)
	}
	return &Server{ln: ln, path: path, log: log.With("module", "ctl"), cmds: map[string]engine.Command{},
		conns: map[net.Conn]struct{}{}, slots: make(chan struct{}, maxConns)}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Register adds commands; a name taken already is skipped with a warning.
func (s *Server) Register(cmds ...engine.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cmds {
		if _, dup := s.cmds[c.Name]; dup {
			s.log.Warn("ctl command registered twice, keeping the first", "command", c.Name)
			continue
		}
		s.cmds[c.Name] = c
	}
}

// RegisterModules adds the commands of every loaded module that is an engine.Commander.
func (s *Server) RegisterModules(mods *engine.ModuleSet) {
	for _, l := range mods.List {
		if c, ok := l.Inst.(engine.Commander); ok {
			s.Register(c.RPC()...)
		}
	}
}

// Methods lists the command names, sorted.
func (s *Server) Methods() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.cmds))
	for n := range s.cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Serve accepts connections until Close.
func (s *Server) Serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Warn("too many ctl connections, refusing one", "max", maxConns)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			<-s.slots
		}()
	}
}

// Close stops accepting, closes open connections, waits for them and removes the socket file.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	dec := json.NewDecoder(io.LimitReader(c, maxRequest))
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				_ = enc.Encode(response{JSONRPC: "2.0", Error: &Error{Code: CodeParse, Message: "Parse error: " + err.Error()}, ID: json.RawMessage("null")})
			}
			return
		}
		resp, reply := s.handle(raw)
		if !reply {
			continue
		}
		_ = c.SetWriteDeadline(time.Now().Add(idleTimeout))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// handle runs one request; reply is false for a notification (no id).
func (s *Server) handle(raw json.RawMessage) (resp response, reply bool) {
	resp = response{JSONRPC: "2.0", ID: json.RawMessage("null")}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil || req.JSONRPC != "2.0" || req.Method == "" {
		resp.Error = &Error{Code: CodeInvalidRequest, Message: "Invalid Request: expected {\"jsonrpc\": \"2.0\", \"method\": ..., \"id\": ...}"}
		return resp, true
	}
	reply = req.ID != nil
	if reply {
		resp.ID = req.ID
	}
	args, err := positional(req.Params)
	if err != nil {
		resp.Error = &Error{Code: CodeInvalidParams, Message: "Invalid params: " + err.Error()}
		return resp, reply
	}
	s.mu.Lock()
	cmd, ok := s.cmds[req.Method]
	s.mu.Unlock()
	if !ok {
		resp.Error = &Error{Code: CodeNotFound, Message: fmt.Sprintf("Method not found: %s (system.listMethods lists them)", req.Method)}
		return resp, reply
	}
	result, err := cmd.Fn(args)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			ce = &Error{Code: CodeFailed, Message: err.Error()}
		}
		resp.Error = ce
		return resp, reply
	}
	if result == nil {
		result = "ok"
	}
	resp.Result = result
	return resp, reply
}

// positional turns JSON-RPC params into command arguments: an array of strings, numbers or booleans.
func positional(p json.RawMessage) ([]string, error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(p, &items); err != nil {
		return nil, errors.New("params must be an array of positional arguments")
	}
	args := make([]string, len(items))
	for i, it := range items {
		var v any
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case string:
			args[i] = v
		case json.Number:
			args[i] = v.String()
		case bool:
			args[i] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("argument %d: expected a string, number or boolean", i+1)
		}
	}
	return args, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
