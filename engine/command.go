package engine

// Command is a control command, called through the control socket as a JSON-RPC method (`siplua ctl NAME
// ARGS…`). Arguments arrive as strings, in order. The result is marshalled to JSON; an error is reported to
// the caller (a *ctl.Error carries a code and details).
type Command struct {
	Name string // "dispatcher.list": module.command, as Kamailio names RPC commands
	Help string
	Fn   func(args []string) (any, error)
}

// Commander is a module that offers control commands (ul.dump, dispatcher.list); checked with a type
// assertion on the module instance when the control socket starts.
type Commander interface {
	RPC() []Command
}
