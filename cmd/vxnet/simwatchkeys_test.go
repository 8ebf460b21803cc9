package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/storetest"
)

// The simulation's counting store keeps the keys-only blocking query
// (store.KeyWatcher) and counts each return as one watch, so the figures
// of `make scale` are those of the plugin's watch.
func TestSimStoreKeepsWatchKeys(t *testing.T) {
	b, s, n := boltSimStore(t)
	if _, ok := store.Store(s).(store.KeyWatcher); !ok {
		t.Fatalf("%T has no keys-only watch (store.KeyWatcher)", s)
	}
	ctx := context.Background()
	if _, err := b.Put(ctx, "changes/a", []byte("a log")); err != nil {
		t.Fatal(err)
	}
	if ks, _, err := store.WatchKeys(ctx, s, "changes/", 0); err != nil || len(ks) != 1 {
		t.Fatalf("WatchKeys(changes/, 0) = %v, %v; want [changes/a]", ks, err)
	}
	if w, r := n.Watches.Load(), n.BytesRead.Load(); w != 1 || r != int64(len("changes/a")) {
		t.Errorf("one WatchKeys counted %d watches, %d bytes; want 1 and the key's %d", w, r, len("changes/a"))
	}
}

// boltSimStore is a counting store on a new bbolt file, the file's own
// store (uncounted) and the counts.
func boltSimStore(t *testing.T) (store.Store, *simStore, *storeCounts) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	n := &storeCounts{}
	return b, newSimStore(b, n), n
}

// A stale watch answered by the leader after all counts as a "watch stale
// leader" call of the simulation besides its "watch stale".
func TestSimStoreCountsStaleFallbacks(t *testing.T) {
	b, _, _ := boltSimStore(t)
	n := &storeCounts{}
	s := newSimStore(&storetest.FallingBack{Store: b}, n)
	if _, _, err := store.WatchStale(context.Background(), s, "alive/", 0); err != nil {
		t.Fatal(err)
	}
	calls, _ := n.calls.copies()
	if calls[callKind("watch stale leader", "alive/")] != 1 || calls[callKind("watch stale", "alive/")] != 1 {
		t.Errorf("calls %v, want one watch stale and one watch stale leader", calls)
	}
}
