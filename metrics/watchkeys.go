package metrics

import (
	"context"

	"github.com/vxnet/vxnet/store"
)

// WatchKeys keeps the wrapped store's keys-only blocking query
// (store.KeyWatcher), counted as Watch is.
func (t *timedStore) WatchKeys(ctx context.Context, prefix string, index uint64) ([]string, uint64, error) {
	ks, i, err := store.WatchKeys(ctx, t.s, prefix, index)
	t.observeWatch(err)
	return ks, i, err
}

// WatchStale keeps the wrapped store's blocking read from any server
// (store.StaleWatcher), counted as Watch is. Without it the plugin's
// reads of alive/ (change 26) and of the liveness monitors' records went
// to the leader: only `vxnet simulate`, whose store wrapper kept it, read
// from any server.
func (t *timedStore) WatchStale(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	kvs, i, err := store.WatchStale(ctx, t.s, prefix, index)
	t.observeWatch(err)
	return kvs, i, err
}
