package main

import (
	"context"
	"testing"

	"github.com/vxnet/vxnet/store"
)

// The simulation's counting store passes the read of several keys in one
// request on (store.MultiGetter) and counts it as one read, so the
// figures of `make scale` are those of the plugin's reads.
func TestSimStoreKeepsGetMany(t *testing.T) {
	b, s, n := boltSimStore(t)
	if _, ok := store.Store(s).(store.MultiGetter); !ok {
		t.Fatalf("%T reads no keys together (store.MultiGetter)", s)
	}
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if _, err := b.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.GetMany(ctx, s, []string{"a", "b", "c"})
	if err != nil || len(got) != 2 {
		t.Fatalf("GetMany(a, b, c) = %v, %v; want a and b", got, err)
	}
	if r := n.Reads.Load(); r != 1 {
		t.Errorf("GetMany of 3 keys counted %d reads; want 1", r)
	}
}

// The counting store keeps the read by any server (store.StaleGetter),
// counted apart as "get many stale", so the simulation's log rounds read
// as the plugin's do and show it (change 31).
func TestSimStoreKeepsGetManyStale(t *testing.T) {
	b, s, n := boltSimStore(t)
	if _, ok := store.Store(s).(store.StaleGetter); !ok {
		t.Fatalf("%T reads by no server but the leader (store.StaleGetter)", s)
	}
	ctx := context.Background()
	if _, err := b.Put(ctx, "changes/a", []byte("a log")); err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetManyStale(ctx, s, []string{"changes/a"}); err != nil || len(got) != 1 {
		t.Fatalf("GetManyStale(changes/a) = %v, %v; want the log", got, err)
	}
	calls, _ := n.calls.copies()
	if c := calls[callKind("get many stale", "changes/a")]; c != 1 || n.Reads.Load() != 1 {
		t.Errorf("one GetManyStale counted %d %q calls, %d reads; want 1, 1 (calls: %v)", c, callKind("get many stale", "changes/a"), n.Reads.Load(), calls)
	}
}
