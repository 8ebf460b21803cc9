package consul_test

import (
	"context"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// GetManyStale answers as GetMany does, in one ?stale transaction
// answered by the server asked (change 31): no forward to the leader.
// A key absent there rolls the transaction back; that chunk is read
// again from the leader, absent keys left out.
func TestGetManyStale(t *testing.T) {
	var stale, other atomic.Int64
	var p *consultest.Proxy
	p = consultest.NewProxy(t, consulAddr(t), func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/txn" {
			if _, ok := r.URL.Query()["stale"]; ok {
				stale.Add(1)
			} else {
				other.Add(1)
			}
		}
		p.Forward(w, r)
	})
	s := open(t, p.Addr(), testPrefix+"-staleget")
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	ks := []string{"changes/a", "changes/b"}
	for _, k := range ks {
		if _, err := s.Put(ctx, k, []byte(`{"seq":1}`)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Delete(context.Background(), k) })
	}
	want, err := s.GetMany(ctx, ks)
	if err != nil {
		t.Fatal(err)
	}
	stale.Store(0)
	other.Store(0)
	got, err := store.GetManyStale(ctx, s, ks)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetManyStale(%v) = %v; want %v as GetMany", ks, got, want)
	}
	if stale.Load() != 1 || other.Load() != 0 || s.StaleGetFallbacks() != 0 {
		t.Errorf("GetManyStale of %d keys: %d ?stale transactions, %d others, %d read again from the leader; want 1, 0, 0", len(ks), stale.Load(), other.Load(), s.StaleGetFallbacks())
	}
	got, err = store.GetManyStale(ctx, s, append(ks, "changes/absent"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || s.StaleGetFallbacks() != 1 {
		t.Errorf("GetManyStale(%v and an absent key) = %v, %d read again from the leader; want %v, 1", ks, got, s.StaleGetFallbacks(), want)
	}
}
