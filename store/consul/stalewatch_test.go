package consul_test

import (
	"context"
	"testing"
	"time"
)

// TestWatchStale: the stale watch blocks and answers as Watch does (on
// one agent, the leader itself, so never "out of touch").
func TestWatchStale(t *testing.T) {
	_, s := openSlow(t, "stale-watch", false)
	ctx := callback(t, 5*time.Second)
	idx, err := s.Put(ctx, "alive/h1", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = s.Put(context.Background(), "alive/h2", []byte("2"))
	}()
	kvs, next, err := s.WatchStale(ctx, "alive/", idx)
	if err != nil || next <= idx || len(kvs) != 2 {
		t.Fatalf("stale watch from %d: %v at %d, %v; want both heartbeats above %d", idx, kvs, next, err, idx)
	}
}
