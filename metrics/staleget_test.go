package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/storetest"
)

// The timed store of `vxnet serve` keeps the wrapped store's read by any
// server (store.StaleGetter): without it the plugin's log rounds would
// have every read forwarded to the leader, as only `vxnet simulate` did
// not (change 31).
func TestStoreKeepsGetManyStale(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	inner := &storetest.ValueReads{Store: b}
	st := New(time.Now).Store(inner)
	ctx := context.Background()
	if _, err := b.Put(ctx, "changes/a", []byte("a log")); err != nil {
		t.Fatal(err)
	}
	got, err := store.GetManyStale(ctx, st, []string{"changes/a"})
	if err != nil || len(got) != 1 {
		t.Fatalf("GetManyStale(changes/a) = %v, %v; want the log", got, err)
	}
	if n := inner.TakeStaleReads(); n != 1 {
		t.Errorf("%d reads by any server reached the wrapped store; want 1", n)
	}
}
