package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// The timed store of `vxnet serve` keeps the wrapped store's index check:
// without it reconcile would read every record in full again.
func TestStoreKeepsIndexCheck(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	st := New(time.Now).Store(b)
	defer st.Close()
	if _, ok := st.(store.IndexChecker); !ok {
		t.Fatalf("%T checks no key indexes (store.IndexChecker)", st)
	}
	ctx := context.Background()
	idx, err := st.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.Changed(ctx, st, map[string]uint64{"k": idx}); err != nil || len(got) != 0 {
		t.Fatalf("Changed(k at its index) = %v, %v; want none", got, err)
	}
}
