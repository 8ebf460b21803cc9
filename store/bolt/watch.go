package bolt

import (
	"context"
	"strings"

	"github.com/vxnet/vxnet/store"
)

// Watch blocks until a key under prefix changed after index, then returns
// the listing as List does. It returns at once if index is 0 or outside the
// remembered history. When ctx ends or the store is closed it returns an
// error wrapping ctx.Err() or saying the store is closed.
func (s *Store) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	for {
		if err := s.check(ctx, "watch", prefix); err != nil {
			return nil, 0, err
		}
		s.mu.Lock()
		wake := s.changedSince(prefix, index)
		changed, done := s.changed, s.done
		s.mu.Unlock()
		if wake {
			return s.list("watch", prefix)
		}
		select {
		case <-changed:
		case <-done:
		case <-ctx.Done():
		}
	}
}

// changedSince reports whether a key under prefix may have changed after
// index. s.mu must be held.
func (s *Store) changedSince(prefix string, index uint64) bool {
	if index == 0 || index < s.floor || index > s.last {
		return true
	}
	for i := len(s.history) - 1; i >= 0; i-- {
		c := s.history[i]
		if c.index > index && strings.HasPrefix(c.key, prefix) {
			return true
		}
	}
	return false
}
