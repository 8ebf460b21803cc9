package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// The metrics wrapper of `vxnet serve` keeps the store's one read of a
// reconcile round (store.RoundReader): without it a steady round would be
// its five requests again.
func TestStoreKeepsReadRound(t *testing.T) {
	st := timedBolt(t)
	rr, ok := st.(store.RoundReader)
	if !ok {
		t.Fatalf("%T reads no round in one request (store.RoundReader)", st)
	}
	ctx := context.Background()
	idx, err := st.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "p/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	lists, changed, err := rr.ReadRound(ctx, []string{"p/"}, map[string]uint64{"k": idx})
	if err != nil || len(changed) != 0 || len(lists["p/"]) != 1 {
		t.Fatalf("ReadRound = %v, %v, %v; want p/a listed, nothing changed", lists, changed, err)
	}
}

// The metrics wrapper keeps the store's listings and reads in one request
// (store.ManyReader): a peer watcher's start and a round's second read.
func TestStoreKeepsReadMany(t *testing.T) {
	st := timedBolt(t)
	mr, ok := st.(store.ManyReader)
	if !ok {
		t.Fatalf("%T lists and reads in no one request (store.ManyReader)", st)
	}
	ctx := context.Background()
	if _, err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	lists, got, err := mr.ReadMany(ctx, []string{"p/"}, []string{"k", "absent"})
	if err != nil || len(lists["p/"]) != 0 || len(got) != 1 {
		t.Fatalf("ReadMany = %v, %v, %v; want p/ listed empty, k read", lists, got, err)
	}
}

// timedBolt is a bolt store in the test's directory behind the timed
// store, closed when the test ends.
func timedBolt(t *testing.T) store.Store {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	st := New(time.Now).Store(b)
	t.Cleanup(func() { st.Close() })
	return st
}
