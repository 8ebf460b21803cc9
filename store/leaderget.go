package store

import "context"

// LeaderGetter is implemented by stores whose read of several keys can
// skip the check that makes a read linearizable (Consul's default mode:
// the leader answers from its state without first confirming with a
// quorum that it still leads). GetManyLeader falls back to GetMany for
// stores and wrappers without one.
//
// Why: a host's round of its change-log watch reads the logs that moved
// (driver/logwatch.go), about once a second per host on a busy cluster;
// read consistently, each costs the Consul servers a quorum round besides
// the read. A log read a little stale is harmless to its reader (the
// caller says why), a record read stale is not: this is for the callers
// that can say so, not a cheaper GetMany.
type LeaderGetter interface {
	// GetManyLeader is GetMany, possibly answered from a state a moment
	// old: during a change of leader, or from a leader elected after a
	// restart of the whole cluster before it applied the log.
	GetManyLeader(ctx context.Context, ks []string) (map[string]KV, error)
}

// GetManyLeader is GetMany without the linearizable read where s is a
// LeaderGetter, else GetMany.
func GetManyLeader(ctx context.Context, s Store, ks []string) (map[string]KV, error) {
	if lg, ok := s.(LeaderGetter); ok && len(ks) > 0 {
		return lg.GetManyLeader(ctx, ks)
	}
	return GetMany(ctx, s, ks)
}
