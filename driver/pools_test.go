package driver

import (
	"context"
	"maps"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// LocalPools names the pool of every subnet of this host's networks.
func TestLocalPools(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := createReq(net1, "198.19.1.0/24", "", nil)
	r.IPv6Data = []*network.IPAMData{{AddressSpace: "vxnet-local", Pool: "fd00:1::/64"}}
	if err := e.d.CreateNetwork(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := e.d.LocalPools(ctx)
	if want := map[string]bool{"198.19.1.0_24": true, "fd00:1::_64": true}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("LocalPools = %v, %v", got, err)
	}
	if err := e.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.d.LocalPools(ctx); err != nil || len(got) != 0 {
		t.Fatalf("LocalPools after delete = %v, %v", got, err)
	}
}
