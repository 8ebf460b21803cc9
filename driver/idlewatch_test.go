package driver

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// watchCounter counts the watch returns on change logs made through it.
type watchCounter struct {
	store.Store
	returns atomic.Int64
}

func (c *watchCounter) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	kvs, idx, err := c.Store.Watch(ctx, prefix, index)
	if err == nil && strings.HasPrefix(prefix, keys.AllChanges) {
		c.returns.Add(1)
	}
	return kvs, idx, err
}

// A member of a network without endpoints must not be woken by writes
// elsewhere in the cluster. On Consul a blocking query on an absent key
// returns on every write of the key space: before a network's first
// endpoint wrote its change log, every member's watch returned on every
// heartbeat and create of the cluster (550,000 returns in 4 minutes of
// the 50-host simulation). The network's create writes an empty log.
func TestIdleNetworkWatchIgnoresOtherWrites(t *testing.T) {
	s := consulStores(t, 1)[0]
	w := &watchCounter{Store: s}
	e := newHost(t, w, "h1", "198.18.0.11")
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, keys.Changes("198.19.1.0_24")); err != nil {
		t.Fatalf("change log of a new network: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the watch is in place
	before := w.returns.Load()
	const writes = 40
	for i := range writes {
		if _, err := s.Put(ctx, fmt.Sprintf("unrelated/%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := w.returns.Load() - before; got > 2 {
		t.Errorf("%d unrelated writes woke the idle network's change-log watch %d times; want at most 2", writes, got)
	}
	for i := range writes {
		if err := s.Delete(ctx, fmt.Sprintf("unrelated/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}
