package usrloc

import (
	"errors"

	"github.com/siplua/siplua/engine"
)

func snapshotPath(name string, cfg *engine.Config) (string, error) {
	if name == "" {
		return "", nil
	}
	if cfg == nil {
		return name, nil
	}
	return cfg.Resolve(name), nil
}

func (s *memStore) loadSnapshot() {}

func (s *memStore) saveSnapshot() error { return errors.New("snapshot: not implemented yet") }
