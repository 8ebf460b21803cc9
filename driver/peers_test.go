package driver

import (
	"context"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
)

func waitPeers(t *testing.T, e *env, vni uint32, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.plane.peerIPs(vni) != want {
		if time.Now().After(deadline) {
			t.Fatalf("peers on %s = %q, want %q", e.d.o.HostID, e.plane.peerIPs(vni), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Endpoints on one host become peer entries on the other; a purge of the
// host removes them, and the host's reconcile puts them back.
func TestPeersFollowTheStore(t *testing.T) {
	e1 := newEnv(t)
	e2 := newHost(t, e1.store, "h2", "198.18.0.12")
	ctx := context.Background()
	for _, e := range []*env{e1, e2} {
		id := map[*env]string{e1: net1, e2: net2}[e]
		if err := e.d.CreateNetwork(ctx, createReq(id, "198.19.1.0/24", "", map[string]interface{}{OptVNI: "9"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e1.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep1,
		Interface: &network.EndpointInterface{Address: "198.19.1.2/24"}}); err != nil {
		t.Fatal(err)
	}
	// A running container's: reconcile republishes only those.
	if _, err := e1.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	// h1 shows h2's endpoint, never its own: waiting for a non-empty
	// list proves h1's watcher ran after both records were written.
	if _, err := e2.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net2, EndpointID: ep2,
		Interface: &network.EndpointInterface{Address: "198.19.1.3/24"}}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e1, 9, "198.19.1.3@198.18.0.12")
	if n, err := e2.d.PurgeHost(ctx, "h1"); err != nil || n != 1 {
		t.Fatalf("PurgeHost = %d, %v", n, err)
	}
	waitPeers(t, e2, 9, "") // h1's gone, and never h2's own ep2
	if err := e1.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	if err := e1.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e2, 9, "")
	if err := e2.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net2, EndpointID: ep2}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e1, 9, "")
	for _, e := range []*env{e1, e2} {
		id := map[*env]string{e1: net1, e2: net2}[e]
		if err := e.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if k := e1.keys(); len(k) != 0 {
		t.Fatalf("keys left: %v", k)
	}
}
