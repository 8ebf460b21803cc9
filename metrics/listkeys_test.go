package metrics

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// The timed store keeps the backend's keys-only listing: without it
// reconcile would read every endpoint record's value again on a real
// plugin, which always runs with metrics. So it keeps the keys-only
// blocking query (store.KeyWatcher) with which a host follows its
// networks' change logs.
func TestStoreKeepsListKeys(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	st := New(time.Now).Store(b)
	defer st.Close()
	if _, ok := st.(store.KeyLister); !ok {
		t.Fatalf("%T lists no keys without values (store.KeyLister)", st)
	}
	ctx := context.Background()
	for _, k := range []string{"p/b", "p/a", "q"} {
		if _, err := st.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.ListKeys(ctx, st, "p/")
	if err != nil || !slices.Equal(got, []string{"p/a", "p/b"}) {
		t.Fatalf("ListKeys(p/) = %v, %v; want [p/a p/b]", got, err)
	}
	if _, ok := st.(store.KeyWatcher); !ok {
		t.Fatalf("%T has no keys-only watch (store.KeyWatcher)", st)
	}
	if got, idx, err := store.WatchKeys(ctx, st, "p/", 0); err != nil || idx == 0 || !slices.Equal(got, []string{"p/a", "p/b"}) {
		t.Fatalf("WatchKeys(p/, 0) = %v at %d, %v; want [p/a p/b]", got, idx, err)
	}
}
