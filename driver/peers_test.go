package driver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store/keys"
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

// Endpoints on one host become peer entries on the other; the host gone
// (liveness) leaves them out, back again puts them back, with no store
// change either way.
func TestPeersFollowTheStore(t *testing.T) {
	e1, e2 := sharedNetwork(t)
	ctx := context.Background()
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	// h1 shows h2's endpoint, never its own: waiting for a non-empty
	// list proves h1's watcher ran after both records were written.
	if _, err := e2.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net2, EndpointID: ep2,
		Interface: &network.EndpointInterface{Address: "198.19.1.3/24"}}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e1, 9, "198.19.1.3@198.18.0.12")
	if v := e2.d.VTEPs(); len(v) != 1 || len(v["h1"]) != 1 || v["h1"][0].String() != "198.18.0.11" {
		t.Fatalf("VTEPs on h2 = %v, want h1 at 198.18.0.11", v)
	}
	keys := len(e1.keys())
	e2.d.SetGone(map[string]bool{"h1": true})
	waitPeers(t, e2, 9, "") // h1's gone, and never h2's own ep2
	e2.d.SetGone(map[string]bool{})
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	if k := len(e1.keys()); k != keys {
		t.Fatalf("liveness changed the store: %d keys, then %d", keys, k)
	}
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

// ForgetHost removes a host's endpoints (the others drop its entries), its
// records and its membership, the network with its VNI when it was the
// last host; the forgotten host's own reconcile then deletes nothing of
// its live namespace and says why.
func TestForgetHost(t *testing.T) {
	e1, e2 := sharedNetwork(t)
	ctx := context.Background()
	e1.plane.take(ep1)
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	f, err := ForgetHost(ctx, e1.store, "h1")
	if err != nil || f != (Forgotten{Endpoints: 1, Records: 2, Networks: 1}) {
		t.Fatalf("ForgetHost(h1) = %+v, %v; want 1 endpoint, 2 records (network, endpoint copy), 1 network", f, err)
	}
	waitPeers(t, e2, 9, "")
	for _, k := range e1.keys() {
		if strings.Contains(k, "h1") || strings.HasPrefix(k, keys.AllEndpoints) {
			t.Errorf("key %q left after forgetting h1", k)
		}
	}
	err = e1.d.Reconcile(ctx)
	if err == nil || !strings.Contains(err.Error(), "deleting nothing") {
		t.Fatalf("reconcile of the forgotten host: %v, want an error that deletes nothing", err)
	}
	if n, _ := e1.plane.Networks(); len(n) != 1 || e1.plane.endpointCount() != 1 {
		t.Fatalf("forgotten host's reconcile removed live state: networks %v, %d endpoints", n, e1.plane.endpointCount())
	}
	// The last host forgotten: the network and its VNI go.
	if f, err := ForgetHost(ctx, e1.store, "h2"); err != nil || f.Removed != 1 {
		t.Fatalf("ForgetHost(h2) = %+v, %v; want its network removed", f, err)
	}
	if k := e1.keys(); len(k) != 0 {
		t.Fatalf("keys left after forgetting every host: %v", k)
	}
	if _, err := ForgetHost(ctx, e1.store, "a/b"); err == nil {
		t.Fatal("ForgetHost took a host ID with a slash")
	}
}

// sharedNetwork is two hosts, h1 and h2, on one network (VNI 9), and a
// running container's endpoint ep1 (198.19.1.2) on h1.
func sharedNetwork(t *testing.T) (e1, e2 *env) {
	t.Helper()
	e1 = newEnv(t)
	e2 = newHost(t, e1.store, "h2", "198.18.0.12")
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
	return e1, e2
}

// ObserveLag hears once of each other host's endpoint that appears after
// the watcher's first listing, with the time since its record was
// written; endpoints there at the first listing, and this host's own, say
// nothing of lag.
func TestObserveLag(t *testing.T) {
	e1, e2 := sharedNetwork(t) // ep1 on h1 exists before h2 watches
	var mu sync.Mutex
	var lags []time.Duration
	e2.d.StopWatches() // before the hook is set: the watchers read it
	e2.d.o.ObserveLag = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		lags = append(lags, d)
	}
	// Clear what the stopped watcher programmed, so that ep1 showing again
	// proves the restarted watcher made its first listing.
	if err := e2.plane.SetPeers(9, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e2.d.Reconcile(ctx); err != nil { // restarts h2's watcher: first listing has ep1
		t.Fatal(err)
	}
	waitPeers(t, e2, 9, "198.19.1.2@198.18.0.11")
	// ep2 appears after the first listing; then ep3, and the listing that
	// shows ep3 shows ep2 again, which must not count twice.
	for _, ep := range []struct{ id, addr, peers string }{
		{ep2, "198.19.1.3", "198.19.1.2@198.18.0.11,198.19.1.3@198.18.0.11"},
		{ep3, "198.19.1.4", "198.19.1.2@198.18.0.11,198.19.1.3@198.18.0.11,198.19.1.4@198.18.0.11"},
	} {
		if _, err := e1.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep.id,
			Interface: &network.EndpointInterface{Address: ep.addr + "/24"}}); err != nil {
			t.Fatal(err)
		}
		waitPeers(t, e2, 9, ep.peers)
	}
	settleWatchers(e2.d)
	mu.Lock()
	defer mu.Unlock()
	if len(lags) != 2 {
		t.Fatalf("lags observed %v; want two, one for ep2 and one for ep3", lags)
	}
	for _, l := range lags {
		if l <= 0 || l > 5*time.Second {
			t.Fatalf("lags observed %v; want each between 0 and 5 s", lags)
		}
	}
}

// ep3 is a third endpoint, for tests that need one more.
const ep3 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

// settleWatchers waits until every peer watcher of d is between two
// listings: a watcher programs the kernel and tells ObserveLag under its
// lock, so once the peers it set are seen, this waits for the rest.
func settleWatchers(d *Driver) {
	d.wmu.Lock()
	ws := make([]*watcher, 0, len(d.watchers))
	for _, w := range d.watchers {
		ws = append(ws, w)
	}
	d.wmu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		w.mu.Unlock()
	}
}
