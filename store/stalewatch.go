package store

import "context"

// StaleWatcher is implemented by stores whose blocking read of a prefix
// may be answered by any server from its own copy of the state, not only
// by the leader (Consul's ?stale). WatchStale falls back to Watch for
// stores and wrappers without one.
//
// Why: every host reads every host's heartbeat (alive/) every 2 s; at 200
// simulated hosts that read was the largest call of the cluster (32,533
// in the create phase) and every one of them went to the leader
// (docs/scaling.md, change 26). Heartbeats are only compared with the
// same host's earlier ones, and silence alone drops nothing (the data
// plane's probes decide), so a copy a moment old is good enough; a copy
// from a server out of touch with the leader is not, and the store then
// asks the leader.
type StaleWatcher interface {
	// WatchStale is Watch, possibly answered from a follower's state a
	// moment old, never from a server that lost touch with its leader.
	// Its index may be below an index an earlier call returned.
	WatchStale(ctx context.Context, prefix string, index uint64) ([]KV, uint64, error)
}

// StaleFallbacks is implemented by StaleWatchers that count the answers
// WatchStale dropped to ask the leader instead (from a server out of
// touch with it), for /metrics and `vxnet simulate`: many of them mean
// the stale reads are not sparing the leader.
type StaleFallbacks interface {
	StaleFallbacks() uint64
}

// WatchStale is Watch answered by any server where s is a StaleWatcher,
// else Watch.
func WatchStale(ctx context.Context, s Store, prefix string, index uint64) ([]KV, uint64, error) {
	if sw, ok := s.(StaleWatcher); ok {
		return sw.WatchStale(ctx, prefix, index)
	}
	return s.Watch(ctx, prefix, index)
}
