package usrloc

import (
	"errors"

	"github.com/siplua/siplua/engine"
)

// newRedisStore opens the Redis backend (to be written).
func newRedisStore(u *Usrloc, env *engine.Env) (Store, error) {
	return nil, errors.New("redis backend: not implemented yet")
}
