package driver

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// countingStore counts write requests (a transaction is one).
type countingStore struct {
	store.Store
	writes atomic.Int32
}

func (s *countingStore) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	s.writes.Add(1)
	return s.Store.Put(ctx, k, v)
}

func (s *countingStore) CAS(ctx context.Context, k string, v []byte, i uint64) (uint64, error) {
	s.writes.Add(1)
	return s.Store.CAS(ctx, k, v, i)
}

func (s *countingStore) Txn(ctx context.Context, ops []store.Op) error {
	s.writes.Add(1)
	return s.Store.Txn(ctx, ops)
}

// An endpoint add is one write request carrying its MAC key, the host's
// copy and the cluster record; a duplicate create leaves nothing new.
func TestEndpointAddIsOneWrite(t *testing.T) {
	s := &countingStore{Store: newEnv(t).store}
	e := newHost(t, s, "h1", "198.18.0.11")
	if err := e.d.CreateNetwork(context.Background(), createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	s.writes.Store(0)
	if err := e.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	if n := s.writes.Load(); n != 1 {
		t.Errorf("endpoint add: %d write requests, want 1", n)
	}
	for _, k := range []string{keys.Endpoint("198.19.1.0_24", ep1), keys.HostEndpoint("h1", ep1), keys.MAC("198.19.1.0_24", "02:42:c6:13:01:02")} {
		if _, err := s.Get(context.Background(), k); err != nil {
			t.Errorf("after endpoint add: %v", err)
		}
	}
	before := e.keys()
	wantErr(t, e.createEndpoint(net1, ep1, "198.19.1.2/24", ""), "already exists")
	if after := e.keys(); len(after) != len(before) {
		t.Errorf("duplicate create changed the store: %d keys, were %d", len(after), len(before))
	}
	e.deleteEndpoint(net1, ep1)
	e.deleteNetwork(net1)
	e.wantNoKeys()
}
