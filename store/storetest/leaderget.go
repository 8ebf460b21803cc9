package storetest

import (
	"context"

	"github.com/vxnet/vxnet/store"
)

// GetManyLeader counts as GetMany does and passes the default-mode read
// on (store.LeaderGetter); LeaderReads tells how many calls were such.
func (r *ValueReads) GetManyLeader(ctx context.Context, ks []string) (map[string]store.KV, error) {
	got, err := store.GetManyLeader(ctx, r.Store, ks)
	r.countRead(got, &r.leaderReads)
	return got, err
}

// GetManyStale counts as GetMany does and passes the read by any server
// on (store.StaleGetter); TakeStaleReads tells how many calls were such.
func (r *ValueReads) GetManyStale(ctx context.Context, ks []string) (map[string]store.KV, error) {
	got, err := store.GetManyStale(ctx, r.Store, ks)
	r.countRead(got, &r.staleReads)
	return got, err
}

// countRead counts the records of a read of several keys, and the call
// in *calls.
func (r *ValueReads) countRead(got map[string]store.KV, calls *int) {
	r.countGot(got)
	r.mu.Lock()
	*calls++
	r.mu.Unlock()
}

// TakeLeaderReads returns the GetManyLeader calls since the last
// TakeLeaderReads.
func (r *ValueReads) TakeLeaderReads() int { return r.take(&r.leaderReads) }

// TakeStaleReads returns the GetManyStale calls since the last
// TakeStaleReads.
func (r *ValueReads) TakeStaleReads() int { return r.take(&r.staleReads) }
