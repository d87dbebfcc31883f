package ctl

import (
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/siplua/siplua/engine"
)

// NewMux is a Server without a socket: commands are registered as for Listen and run with Exec (the
// jsonrpcs module's KSR.jsonrpcs.exec runs `siplua ctl` commands from a route this way).
func NewMux(log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{log: log, cmds: map[string]engine.Command{}}
}

// Reply is the outcome of one Exec: Code 200 and Text "OK" for a result, else the error's code and
// message (Kamailio's $jsonrpl(code) and $jsonrpl(text)); Body is the JSON-RPC response as the socket
// would send it (no trailing newline).
type Reply struct {
	Code int
	Text string
	Body string
}

// ErrNotJSON is Exec's error for a request that is not a JSON value.
var ErrNotJSON = errors.New("jsonrpc request: not a JSON document")

// Exec runs one JSON-RPC request given as text. A document that is not JSON is ErrNotJSON; every other
// problem (an invalid request, an unknown method, a failed command) is a Reply with the error.
func (s *Server) Exec(req string) (Reply, error) {
	if !json.Valid([]byte(req)) {
		return Reply{}, ErrNotJSON
	}
	resp, _ := s.handle(json.RawMessage(req))
	b, err := json.Marshal(resp)
	if err != nil {
		resp = response{JSONRPC: "2.0", Error: &Error{Code: CodeFailed, Message: "result is not JSON: " + err.Error()}, ID: resp.ID}
		b, _ = json.Marshal(resp)
	}
	if resp.Error != nil {
		return Reply{Code: resp.Error.Code, Text: resp.Error.Message, Body: string(b)}, nil
	}
	return Reply{Code: 200, Text: "OK", Body: string(b)}, nil
}
