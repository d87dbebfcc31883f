package usrloc

import (
	"errors"

	"github.com/siplua/siplua/engine"
)

// newMemoryStore opens the in-memory backend (to be written).
func newMemoryStore(u *Usrloc, env *engine.Env) (Store, error) {
	return nil, errors.New("memory backend: not implemented yet")
}
