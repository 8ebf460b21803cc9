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
