package ipam

import (
	"context"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store/consul/consultest"
	"github.com/vxnet/vxnet/store/keys"
)

// TestSlowConsulLeasesOnce: a RequestAddress whose lease transaction
// times out on a slow Consul (4 s, store/consul's attempt), and is
// applied there anyway, before the retry or after it, succeeds within
// the callback's 10 s with that one lease: no second address, no lease
// left behind, and the next request gets the next address.
func TestSlowConsulLeasesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for store/consul's 4 s attempt timeout")
	}
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "applied before the retry", true: "applied after the retry"}[late], func(t *testing.T) {
			slow := consultest.NewSlow(t, consultest.Addr(t))
			slow.Late(late)
			s := openConsul(t, slow.Addr(), "vxnet-ipam-test/"+randomHex(t))
			t.Cleanup(slow.Release)
			m := New(Options{Store: s, HostID: "h1"})
			id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.71.0/24"})
			slow.Only(keys.Leases(id))
			slow.Hold(consultest.Txn, 1)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			resp, err := m.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: id})
			if err != nil {
				t.Fatalf("RequestAddress with its lease's first attempt timed out (after %s): %v", time.Since(start), err)
			}
			first := mustPrefix(t, resp.Address).Addr()
			leases, err := m.Leases(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(leases) != 1 || leases[first].Host != "h1" {
				t.Fatalf("leases after one RequestAddress: %v; want only %s, held by h1", leases, first)
			}
			next, err := request(m, id, "", nil)
			if err != nil || mustPrefix(t, next).Addr() == first {
				t.Fatalf("next RequestAddress: %s, %v; want another address than %s", next, err, first)
			}
			release(t, m, id, first.String())
			release(t, m, id, mustPrefix(t, next).Addr().String())
			releasePool(t, m, id)
			requireEmpty(t, s)
		})
	}
}
