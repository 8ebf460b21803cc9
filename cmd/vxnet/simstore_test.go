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
