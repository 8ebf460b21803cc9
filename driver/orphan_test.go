package driver

import (
	"context"
	"slices"
	"testing"

	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store/keys"
)

// poolStates is what Pools.PoolState tells: this host's membership of the
// pool, and whether it is in setup.
type poolStates struct{ member, setup bool }

// A DeleteNetwork that dockerd resent with an empty body leaves Docker
// without the network and its pool released: reconcile removes the network
// on this host, and a create on its subnet takes its place.
func TestOrphanedNetworks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name         string
		space        string
		scope        scope.Scope
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
			e.pools.set(poolStates{member: true, setup: true})
			e.d.o.Scope = c.scope
			req := createReq(net1, "198.19.1.0/24", "", nil)
			req.IPv4Data[0].AddressSpace = c.space
			if err := e.d.CreateNetwork(ctx, req); err != nil {
				t.Fatal(err)
			}
			e.pools.set(poolStates{member: c.member, setup: c.setup})
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
			if nets, _ := e.plane.Networks(); len(nets) != 1 || !slices.Contains(e.keys(), keys.HostNetwork(e.d.o.HostID, net2)) {
				t.Fatalf("after the take-over: namespaces %v, keys %v", nets, e.keys())
			}
		})
	}
}

// A create or delete killed between its store writes leaves pieces no
// Docker network backs; reconcile removes them, and a create on the subnet
// is not refused because of them.
func TestReconcileDropsHalfDoneCreatesAndDeletes(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		break_ func(e *env, n *Network) // what the killed call left
		create bool                     // a new create instead of reconcile
	}{
		{name: "joined, not recorded", break_: func(e *env, n *Network) { e.mustDelete(keys.HostNetwork(e.d.o.HostID, net1)) }},
		{name: "joined, not recorded, created again", create: true, break_: func(e *env, n *Network) { e.mustDelete(keys.HostNetwork(e.d.o.HostID, net1)) }},
		{name: "VNI reserved, no network", break_: func(e *env, n *Network) {
			e.mustDelete(keys.HostNetwork(e.d.o.HostID, net1))
			// The record and the empty change log are one transaction.
			e.mustDelete(keys.Network(n.Key))
			e.mustDelete(keys.Changes(n.Key))
		}},
		{name: "last host left, record of the network kept", break_: func(e *env, n *Network) {
			e.mustDelete(keys.Network(n.Key))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
				t.Fatal(err)
			}
			n, err := e.d.lookup(ctx, net1)
			if err != nil {
				t.Fatal(err)
			}
			// Another host's reservation is never this host's to free.
			if _, err := e.store.Put(ctx, keys.VNI(9999), []byte(`{"network":"198.19.2.0_24","host":"h2"}`)); err != nil {
				t.Fatal(err)
			}
			c.break_(e, n)
			if c.create {
				if err := e.d.CreateNetwork(ctx, createReq(net2, "198.19.1.0/24", "", nil)); err != nil {
					t.Fatalf("create on the subnet of a half-done create: %v", err)
				}
				if _, err := e.d.lookup(ctx, net2); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err := e.d.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if nets, _ := e.plane.Networks(); len(nets) != 0 || !slices.Equal(e.keys(), []string{keys.VNI(9999)}) {
				t.Fatalf("after reconcile: namespaces %v, keys %v; want only the other host's VNI", nets, e.keys())
			}
		})
	}
}

func (e *env) mustDelete(key string) {
	e.t.Helper()
	if err := e.store.Delete(context.Background(), key); err != nil {
		e.t.Fatal(err)
	}
}
