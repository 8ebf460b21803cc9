package ipam

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// listCounter counts the listings of lease prefixes made through it.
type listCounter struct {
	store.Store
	leaseLists atomic.Int64
}

func (c *listCounter) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	if strings.HasPrefix(prefix, "ipam/addrs/") {
		c.leaseLists.Add(1)
	}
	return c.Store.List(ctx, prefix)
}

// Once a host has leased in a pool, the next address costs no listing of
// the pool's leases (a read that grew with the pool); a cursor address
// another host took meanwhile falls back to the listing and still hands
// out a free address.
func TestLeaseNextSkipsTheListing(t *testing.T) {
	s, _ := openStore(t)
	c := &listCounter{Store: s}
	h1, h2 := New(Options{Store: c, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	id := requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24"})
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24"})
	mustRequest(t, h1, id, "", gwOpts)
	first := mustRequest(t, h1, id, "", nil)
	before := c.leaseLists.Load()
	for range 20 {
		mustRequest(t, h1, id, "", nil)
	}
	if n := c.leaseLists.Load() - before; n != 0 {
		t.Errorf("20 addresses after the first listed the leases %d times, want 0", n)
	}

	// h2 takes the address h1's cursor points at.
	next := first.Addr()
	for range 21 {
		next = next.Next()
	}
	taken := mustRequest(t, h2, id, next.String(), nil)
	before = c.leaseLists.Load()
	got := mustRequest(t, h1, id, "", nil)
	if got.Addr() == taken.Addr() {
		t.Fatalf("%s handed out to h1 although h2 holds it", got.Addr())
	}
	if n := c.leaseLists.Load() - before; n != 1 {
		t.Errorf("a taken cursor address listed the leases %d times, want 1", n)
	}
	leases, err := h1.Leases(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if l := leases[got.Addr()]; l.Host != "h1" {
		t.Errorf("lease of %s: host %q, want h1", got.Addr(), l.Host)
	}
	if _, err := s.Get(context.Background(), keys.Lease(id, taken.Addr())); err != nil {
		t.Errorf("h2's lease of %s: %v", taken.Addr(), err)
	}
}
