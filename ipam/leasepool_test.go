package ipam

import (
	"fmt"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store/keys"
	"github.com/vxnet/vxnet/store/storetest"
)

// RequestAddress reads the pool record again only when it changed: once
// the network exists (setup over, gateway fixed), an address costs one
// index check of the pool and the lease, not a consistent read of the
// record (which grows with the pool's hosts) each (change 21). Another
// host's join moves the record: the next request reads it once.
func TestRequestAddressReadsPoolOnlyWhenChanged(t *testing.T) {
	s, _ := openStore(t)
	r := &storetest.ValueReads{Store: s, Prefix: keys.Pools}
	h1, h2 := New(Options{Store: r, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	id := requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	addr := func(want string) {
		t.Helper()
		if a, err := request(h1, id, "", nil); err != nil || a != want {
			t.Fatalf("RequestAddress = %q, %v; want %s", a, err, want)
		}
	}
	if gw, err := request(h1, id, "", gwOpts); err != nil || gw != "198.19.8.1/24" {
		t.Fatalf("gateway = %q, %v", gw, err)
	}
	addr("198.19.8.2/24") // reads the record the gateway changed
	r.Take()
	r.TakeChecks()
	const adds = 5
	for i := range adds {
		addr(fmt.Sprintf("198.19.8.%d/24", 3+i))
	}
	if n, c := r.Take(), r.TakeChecks(); n != 0 || c != adds {
		t.Errorf("%d addresses of an unchanged pool: %d pool records read, %d index checks; want 0 and %d", adds, n, c, adds)
	}
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	addr("198.19.8.8/24")
	if n := r.Take(); n != 1 {
		t.Errorf("RequestAddress after h2 joined the pool read the record %d times; want 1", n)
	}
}
