package storetest

import (
	"context"
	"sync/atomic"

	"github.com/vxnet/vxnet/store"
)

// FallingBack is Store with a stale watch (store.StaleWatcher) that drops
// every answer for the leader's: it watches as Watch and counts each one
// (store.StaleFallbacks), for the tests of what counts them.
type FallingBack struct {
	store.Store
	n atomic.Uint64
}

// WatchStale is Watch, counted as a stale answer dropped.
func (s *FallingBack) WatchStale(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	s.n.Add(1)
	return s.Watch(ctx, prefix, index)
}

// StaleFallbacks is how many WatchStale calls there were.
func (s *FallingBack) StaleFallbacks() uint64 { return s.n.Load() }
