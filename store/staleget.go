package store

import "context"

// StaleGetter is implemented by stores whose read of several keys may be
// answered by whichever server the client asks, from its own copy of the
// state, without forwarding it to the leader (Consul's ?stale).
// GetManyStale falls back to GetManyLeader for stores and wrappers
// without one.
//
// Why: a host's rounds of its change-log watch read the logs that moved
// (driver/logwatch.go): at 200 simulated hosts 86,189 such reads in the
// add phase, ~50 KB each, every one forwarded by the server the host
// asks to the leader and answered back through it (docs/scaling.md,
// change 31). Answered where asked, each costs one server one read
// instead of two servers the forwarding, and the leader none.
//
// A stale answer may be older than one an earlier call returned (another
// server, further behind), and an absent key may only be not there yet:
// the caller must tell such answers and ask the leader for those keys.
type StaleGetter interface {
	// GetManyStale returns, by key, those of ks that exist on the server
	// answering, possibly a follower a moment behind; never a server out
	// of touch with its leader (then the leader answers).
	GetManyStale(ctx context.Context, ks []string) (map[string]KV, error)
}

// StaleGetFallbacks is implemented by StaleGetters that count the reads
// GetManyStale asked of the leader instead (an answer from a server out
// of touch with it, or rolled back there), for `vxnet simulate`.
type StaleGetFallbacks interface {
	StaleGetFallbacks() uint64
}

// GetManyStale is GetManyLeader answered by any server where s is a
// StaleGetter.
func GetManyStale(ctx context.Context, s Store, ks []string) (map[string]KV, error) {
	if sg, ok := s.(StaleGetter); ok && len(ks) > 0 {
		return sg.GetManyStale(ctx, ks)
	}
	return GetManyLeader(ctx, s, ks)
}
