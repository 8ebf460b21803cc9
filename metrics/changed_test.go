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

// The metrics wrapper of `vxnet serve` keeps the store's read of several
// keys in one request (store.MultiGetter): without it every re-read of
// records reconcile found changed would be a request of its own.
func TestStoreKeepsGetMany(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	st := New(time.Now).Store(b)
	defer st.Close()
	if _, ok := st.(store.MultiGetter); !ok {
		t.Fatalf("%T reads no keys together (store.MultiGetter)", st)
	}
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if _, err := st.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := store.GetMany(ctx, st, []string{"a", "b", "c"}); err != nil || len(got) != 2 || string(got["b"].Value) != "b" {
		t.Fatalf("GetMany(a, b, c) = %v, %v; want a and b", got, err)
	}
}
