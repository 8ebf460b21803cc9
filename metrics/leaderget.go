package metrics

import (
	"context"
	"time"

	"github.com/vxnet/vxnet/store"
)

// GetManyLeader keeps the wrapped store's default-mode read of several
// keys (store.LeaderGetter), timed as GetMany.
func (t *timedStore) GetManyLeader(ctx context.Context, ks []string) (map[string]store.KV, error) {
	start := time.Now()
	got, err := store.GetManyLeader(ctx, t.s, ks)
	t.observe("get_many", start, err)
	return got, err
}

// GetManyStale keeps the wrapped store's read of several keys by any
// server (store.StaleGetter), timed as GetMany.
func (t *timedStore) GetManyStale(ctx context.Context, ks []string) (map[string]store.KV, error) {
	start := time.Now()
	got, err := store.GetManyStale(ctx, t.s, ks)
	t.observe("get_many", start, err)
	return got, err
}
