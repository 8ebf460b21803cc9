package driver

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// poolStates fakes ipam.IPAM.PoolState: this host's membership of the
// pool, and whether it is in setup.
type poolStates struct{ member, setup bool }

func (p *poolStates) state(context.Context, netip.Prefix) (bool, bool, error) {
	return p.member, p.setup, nil
}

// A DeleteNetwork that dockerd resent with an empty body leaves Docker
// without the network and its pool released: reconcile removes the network
// on this host, and a create on its subnet takes its place.
func TestOrphanedNetworks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name         string
		space, scope string
		member       bool
		setup        bool
		wantRemoved  bool
		wantTakeOver bool
	}{
		{name: "pool held", space: "vxnet-local", member: true},
		{name: "pool released", space: "vxnet-local", wantRemoved: true},
		{name: "pool requested again for a new network", space: "vxnet-local", member: true, setup: true, wantTakeOver: true},
		{name: "Docker's own IPAM", space: "LocalDefault"},
		{name: "swarm", space: "vxnet-global", scope: "global"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ps := &poolStates{member: true, setup: true}
			e.d.o.PoolState, e.d.o.Scope = ps.state, c.scope
			req := createReq(net1, "198.19.1.0/24", "", nil)
			req.IPv4Data[0].AddressSpace = c.space
			if err := e.d.CreateNetwork(ctx, req); err != nil {
				t.Fatal(err)
			}
			ps.member, ps.setup = c.member, c.setup
			if err := e.d.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			nets, _ := e.plane.Networks()
			if removed := len(nets) == 0 && len(e.keys()) == 0; removed != c.wantRemoved {
				t.Fatalf("removed %v, want %v: namespaces %v, keys %v", removed, c.wantRemoved, nets, e.keys())
			}
			if c.wantRemoved {
				return
			}
			req2 := createReq(net2, "198.19.1.0/24", "", nil)
			req2.IPv4Data[0].AddressSpace = c.space
			err := e.d.CreateNetwork(ctx, req2)
			if !c.wantTakeOver {
				wantErr(t, err, "already used by vxnet network")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.d.lookup(ctx, net1); err == nil {
				t.Fatal("the network Docker no longer has is still there")
			}
			if _, err := e.d.lookup(ctx, net2); err != nil {
				t.Fatal(err)
			}
			if nets, _ := e.plane.Networks(); len(nets) != 1 || !slices.Contains(e.keys(), e.d.localKey(net2)) {
				t.Fatalf("after the take-over: namespaces %v, keys %v", nets, e.keys())
			}
		})
	}
}
