package driver

import (
	"context"
	"errors"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// A network whose record cannot be read (a store that lists but fails to
// get, as during a leader election) keeps its namespace: reconcile must
// not take it for a network this host no longer has.
func TestReconcileKeepsNamespacesItCannotLookUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	flaky := &Driver{o: e.d.o, life: e.d.life, watchers: map[string]*watcher{}}
	flaky.o.Store = failingStore{e.store}
	wantErr(t, flaky.Reconcile(ctx), "consul down")
	if nets, _ := e.plane.Networks(); len(nets) != 1 {
		t.Fatalf("namespaces after a reconcile that could not read the network: %v", nets)
	}
}

// Reconcile republishes a purged endpoint only while its veth exists (a
// running container); an endpoint record without one (a create whose
// answer was lost, or one between CreateEndpoint and Join) is left as it
// is, not brought back with its lease.
func TestReconcileRepublishesOnlyLiveEndpoints(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep1,
		Interface: &network.EndpointInterface{Address: "198.19.1.5/24"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.d.lookup(ctx, net1)
	if err != nil {
		t.Fatal(err)
	}
	purge := func() {
		t.Helper()
		if err := e.store.Delete(ctx, keys.Endpoint(n.Key, ep1)); err != nil {
			t.Fatal(err)
		}
	}
	purge()
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(ctx, keys.Endpoint(n.Key, ep1)); !errors.Is(err, store.ErrNotFound) || e.pools.reclaims() != 0 {
		t.Fatalf("endpoint without a veth republished (%v), %d addresses reclaimed", err, e.pools.reclaims())
	}
	if _, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1}); err == nil {
		t.Fatal("join of an endpoint whose record is gone succeeded")
	}
	// With its veth (a running container), it comes back.
	cp, err := e.store.Get(ctx, keys.HostEndpoint(e.d.o.HostID, ep1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CAS(ctx, keys.Endpoint(n.Key, ep1), cp.Value, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatal(err)
	}
	purge()
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(ctx, keys.Endpoint(n.Key, ep1)); err != nil || e.pools.reclaims() != 1 {
		t.Fatalf("live endpoint not republished (%v), %d addresses reclaimed", err, e.pools.reclaims())
	}
}
