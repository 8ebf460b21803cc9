package metrics

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/storetest"
)

// The timed store keeps the stale watch, and /metrics shows how often it
// asked the leader instead.
func TestStaleFallbacksExported(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := New(nil)
	inner := &storetest.FallingBack{Store: b}
	st := m.Store(inner)
	for range 2 {
		if _, _, err := store.WatchStale(context.Background(), st, "alive/", 0); err != nil {
			t.Fatal(err)
		}
	}
	if inner.StaleFallbacks() != 2 {
		t.Errorf("%d stale watches reached the wrapped store, want 2", inner.StaleFallbacks())
	}
	_, text := scrape(t, m, "/metrics")
	hasLine(t, text, "vxnet_store_stale_fallbacks_total 2", `vxnet_store_watches_total{result="ok"} 2`)
}
