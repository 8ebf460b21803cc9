package driver

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// keyReads counts the Gets of each key made through it.
type keyReads struct {
	store.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *keyReads) Get(ctx context.Context, key string) (store.KV, error) {
	s.mu.Lock()
	s.gets[key]++
	s.mu.Unlock()
	return s.Store.Get(ctx, key)
}

// take returns the Gets of keys since the last take, and forgets them all.
func (s *keyReads) take(keys ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range keys {
		n += s.gets[k]
	}
	clear(s.gets)
	return n
}

// lifecycle runs the endpoint callbacks of one `docker run --rm`.
func (e *env) lifecycle(netID, id, addr string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.createEndpoint(netID, id, addr, ""); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: netID, EndpointID: id}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.d.Leave(ctx, &network.LeaveRequest{NetworkID: netID, EndpointID: id}); err != nil {
		e.t.Fatal(err)
	}
	e.deleteEndpoint(netID, id)
}

// A container's endpoint callbacks read the network's records (this
// host's reference and the cluster record) once, not in each callback:
// they were 8 store round trips per `docker run` (issue #13).
func TestEndpointCallbacksReadNetworkOnce(t *testing.T) {
	s := &keyReads{Store: newEnv(t).store, gets: map[string]int{}}
	e := newHost(t, s, "h1", "198.18.0.11")
	if err := e.d.CreateNetwork(context.Background(), createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	netKeys := []string{keys.HostNetwork("h1", net1), keys.Network("198.19.1.0_24")}
	s.take()
	e.lifecycle(net1, ep1, "198.19.1.2/24")
	if n := s.take(netKeys...); n > 2 {
		t.Errorf("first container: %d reads of the network's records, want at most 2", n)
	}
	e.lifecycle(net1, ep2, "198.19.1.3/24")
	if n := s.take(netKeys...); n != 0 {
		t.Errorf("second container: %d reads of the network's records, want 0 (cached)", n)
	}
	e.deleteNetwork(net1)
	e.wantNoKeys()
}

// A network deleted, or dropped by reconcile, is not answered from the
// cache: its endpoint callbacks fail naming it, and a network created
// again under the same Docker ID is read anew.
func TestCachedNetworkGoneFailsClearly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	e.lifecycle(net1, ep1, "198.19.1.2/24") // fills the cache
	e.deleteNetwork(net1)
	err := e.createEndpoint(net1, ep2, "198.19.1.3/24", "")
	if !errkind.Is(err, errkind.NotFound) || !strings.Contains(err.Error(), net1) {
		t.Fatalf("endpoint in a deleted network: %v, want not found naming %s", err, net1)
	}

	// The same Docker ID on another subnet: the old record must not answer.
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.2.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	e.lifecycle(net1, ep1, "198.19.2.2/24")
	if got := strings.Join(e.keys(), " "); strings.Contains(got, "198.19.1.0_24") || !strings.Contains(got, keys.Network("198.19.2.0_24")) {
		t.Errorf("after a container on the recreated network: keys %s, want the network on 198.19.2.0/24 only", got)
	}

	// Its cluster record removed behind the driver's back (another host
	// forgot this one): reconcile drops the network, and the cache with it.
	e.lifecycle(net1, ep2, "198.19.2.3/24")
	e.mustDelete(keys.Network("198.19.2.0_24"))
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	err = e.createEndpoint(net1, ep2, "198.19.2.3/24", "")
	if !errkind.Is(err, errkind.NotFound) || !strings.Contains(err.Error(), net1) {
		t.Fatalf("endpoint in a network reconcile dropped: %v, want not found naming %s", err, net1)
	}
	for _, k := range e.keys() {
		if !strings.HasPrefix(k, keys.VNIs) { // the cluster record deleted above held the VNI
			t.Errorf("left behind: %s", k)
		}
	}
}
