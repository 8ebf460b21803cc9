package ipam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
	"github.com/vxnet/vxnet/store/keys"
)

// storeCase is one test run on every backend.
type storeCase struct {
	name string
	fn   func(t *testing.T, open func(t *testing.T) store.Store)
}

// runOnStores runs every case on a fresh bbolt file and on a fresh prefix
// of one real Consul dev agent (package consultest: in CI a missing Consul
// fails the test). A case's open returns a new empty store each call; on
// Consul they share the prefix of the case, so several IPAMs of one case
// see each other, as hosts on one Consul do.
func runOnStores(t *testing.T, cases []storeCase) {
	t.Run("bolt", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s, _ := openStore(t)
				tc.fn(t, func(*testing.T) store.Store { return s })
			})
		}
	})
	t.Run("consul", func(t *testing.T) {
		addr := consultest.Addr(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				prefix := "vxnet-ipam-test/" + randomHex(t)
				tc.fn(t, func(t *testing.T) store.Store { return openConsul(t, addr, prefix) })
			})
		}
	})
}

// openConsul opens a store on prefix; when the test ends it deletes what
// is left under the prefix (the test checks emptiness itself) and closes.
func openConsul(t *testing.T, addr, prefix string) store.Store {
	t.Helper()
	s, err := consul.Open(context.Background(), "consul://"+addr+"/"+prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		kvs, _, err := s.List(ctx, "")
		for _, kv := range kvs {
			err = errors.Join(err, s.Delete(ctx, kv.Key))
		}
		if err = errors.Join(err, s.Close()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func randomHex(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// requireEmpty fails the test when keys are left under ipam/.
func requireEmpty(t *testing.T, s store.Store) {
	t.Helper()
	kvs, _, err := s.List(context.Background(), keys.IPAM)
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 0 {
		var keys []string
		for _, kv := range kvs {
			keys = append(keys, kv.Key+"="+string(kv.Value))
		}
		t.Fatalf("%d keys left: %v", len(kvs), keys)
	}
}

// failingStore fails its failAt-th write (Put, CAS, Delete, DeleteCAS;
// counted from 1) with store.ErrUnavailable, as a crash or an outage at
// that point would leave the store. failAt 0 fails nothing.
type failingStore struct {
	store.Store
	mu     sync.Mutex
	writes int
	failAt int
}

func (f *failingStore) fail(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.writes == f.failAt {
		return fmt.Errorf("%s %q: injected failure: %w", op, key, store.ErrUnavailable)
	}
	return nil
}

func (f *failingStore) Put(ctx context.Context, key string, v []byte) (uint64, error) {
	if err := f.fail("put", key); err != nil {
		return 0, err
	}
	return f.Store.Put(ctx, key, v)
}

func (f *failingStore) CAS(ctx context.Context, key string, v []byte, idx uint64) (uint64, error) {
	if err := f.fail("cas", key); err != nil {
		return 0, err
	}
	return f.Store.CAS(ctx, key, v, idx)
}

func (f *failingStore) Delete(ctx context.Context, key string) error {
	if err := f.fail("delete", key); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *failingStore) Txn(ctx context.Context, ops []store.Op) error {
	if err := f.fail("txn", store.TxnKey(ops)); err != nil {
		return err
	}
	return f.Store.Txn(ctx, ops)
}

func (f *failingStore) DeleteCAS(ctx context.Context, key string, idx uint64) error {
	if err := f.fail("delete-cas", key); err != nil {
		return err
	}
	return f.Store.DeleteCAS(ctx, key, idx)
}
