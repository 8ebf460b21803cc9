package metrics

import (
	"context"
	"errors"

	"github.com/vxnet/vxnet/store"
)

// WatchKeys keeps the wrapped store's keys-only blocking query
// (store.KeyWatcher), counted as Watch is.
func (t *timedStore) WatchKeys(ctx context.Context, prefix string, index uint64) ([]string, uint64, error) {
	ks, i, err := store.WatchKeys(ctx, t.s, prefix, index)
	switch {
	case err == nil:
		t.m.watches.WithLabelValues("ok").Inc()
		t.m.storeResult(nil)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		t.m.watches.WithLabelValues("timeout").Inc()
	default:
		t.m.watches.WithLabelValues("error").Inc()
		t.m.storeErrors.WithLabelValues("watch").Inc()
		t.m.storeResult(err)
	}
	return ks, i, err
}
