package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrNotListening means no siplua answers on the socket (no file, or nobody accepting on it).
var ErrNotListening = errors.New("nothing is listening")

// Call sends one request with positional string arguments and returns the raw JSON response (for -json)
// and the raw result. A JSON-RPC error comes back as *Error, a dead socket as ErrNotListening (wrapped).
func Call(path, method string, args []string, timeout time.Duration) (raw, result json.RawMessage, err error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("%s: %w", path, ErrNotListening)
		}
		return nil, nil, fmt.Errorf("connect %s: %w", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if args == nil {
		args = []string{}
	}
	req := map[string]any{"jsonrpc": "2.0", "method": method, "params": args, "id": 1}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, nil, fmt.Errorf("send to %s: %w", path, err)
	}
	if err := json.NewDecoder(c).Decode(&raw); err != nil {
		return nil, nil, fmt.Errorf("read answer from %s: %w", path, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return raw, nil, fmt.Errorf("answer from %s: %w", path, err)
	}
	if resp.Error != nil {
		return raw, nil, resp.Error
	}
	return raw, resp.Result, nil
}
