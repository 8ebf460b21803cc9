package consul

import (
	"context"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// Watch blocks until Consul's index for prefix moves away from index, then
// returns the listing as List does. Index 0 returns at once; an index above
// Consul's (the index went backwards) returns at once with the current
// listing, which resets the caller. When ctx ends or the store is closed it
// returns an error wrapping ctx.Err() or saying the store is closed.
func (s *Store) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	for {
		if err := s.check(ctx, "watch", prefix); err != nil {
			return nil, 0, err
		}
		// Default consistency, not "consistent": the leader answers
		// without a quorum round per blocking query, which every host
		// holds on every network it is on. A watcher acts on the
		// listing it gets and is woken again by any later write.
		q := &api.QueryOptions{WaitIndex: index, WaitTime: watchWait}
		// Consul adds up to WaitTime/16 of jitter to a blocking query.
		kvs, next, _, err := s.list(ctx, "watch", prefix, q, watchWait+watchWait/16+s.attempt)
		if err != nil || next != index {
			return kvs, next, err
		}
	}
}

// staleMax is how long a server answering a stale read may have been out
// of touch with its leader: a follower hears from it every heartbeat
// (about 100 ms at raft_multiplier 1, 500 ms at Consul's default 5).
const staleMax = time.Second

// outOfTouch tells whether a stale answer came from a server without a
// leader or out of touch with it for more than staleMax: such an answer
// is dropped and the leader asked.
func outOfTouch(meta *api.QueryMeta) bool {
	return !meta.KnownLeader || meta.LastContact > staleMax
}

// WatchStale is Watch answered by whichever server the agent asks
// (store.StaleWatcher). An answer from a server without a leader, or out
// of touch with it for more than staleMax, is dropped and the leader asked
// (Watch).
func (s *Store) WatchStale(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	for {
		if err := s.check(ctx, "watch stale", prefix); err != nil {
			return nil, 0, err
		}
		q := &api.QueryOptions{WaitIndex: index, WaitTime: watchWait, AllowStale: true}
		kvs, next, meta, err := s.list(ctx, "watch stale", prefix, q, watchWait+watchWait/16+s.attempt)
		if err == nil && outOfTouch(meta) {
			s.staleFallbacks.Add(1)
			return s.Watch(ctx, prefix, index)
		}
		if err != nil || next != index {
			return kvs, next, err
		}
	}
}

// StaleFallbacks is how many answers WatchStale dropped to ask the leader
// (store.StaleFallbacks).
func (s *Store) StaleFallbacks() uint64 { return s.staleFallbacks.Load() }
