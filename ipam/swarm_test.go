package ipam

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
)

// serial is the option swarmkit's allocator adds to its requests.
var serial = map[string]string{"com.docker.network.ipam.serial": "true"}

// TestGlobalScopeSwarmFlow replays the calls a swarm makes for a global
// network with tasks on the manager (h1) and a worker (h2), as moby
// v20.10.24 makes them, and checks nothing is left after the releases.
func TestGlobalScopeSwarmFlow(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	h1 := New(Options{Store: s, HostID: "h1", Scope: "global"})
	h2 := New(Options{Store: s, HostID: "h2", Scope: "global"})
	req := ipamapi.RequestPoolRequest{Pool: "198.19.4.0/24", Options: serial}
	gwOpts := map[string]string{requestAddressType: gatewayType, "com.docker.network.ipam.serial": "true"}

	// manager allocator: pool, gateway, two task addresses
	id := requestPool(t, h1, req)
	gw, err := request(h1, id, "", gwOpts)
	if err != nil || gw != "198.19.4.1/24" {
		t.Fatalf("gateway %q, %v", gw, err)
	}
	t1 := mustRequest(t, h1, id, "", serial).String()
	t2 := mustRequest(t, h1, id, "", serial).String()
	if t1 == t2 {
		t.Fatalf("task addresses %q %q", t1, t2)
	}
	subnet, gwAddr := netip.MustParsePrefix(req.Pool), netip.MustParseAddr("198.19.4.1")
	for _, a := range []string{t1, t2} {
		if p := mustPrefix(t, a); !subnet.Contains(p.Addr()) || p.Bits() != subnet.Bits() || p.Addr() == gwAddr || p.Addr() == subnet.Addr() {
			t.Fatalf("task address %s: want a host address of %s other than the gateway", a, subnet)
		}
	}
	addr := func(p string) string { return mustPrefix(t, p).Addr().String() }
	// nodes: the manager for task 1, the worker for task 2, each creating
	// the network and confirming its task's address
	for _, n := range []struct {
		m    *IPAM
		task string
	}{{h1, t1}, {h2, t2}} {
		if got := requestPool(t, n.m, req); got != id {
			t.Fatalf("%s: pool %q, want %q", n.m.o.HostID, got, id)
		}
		if got, err := request(n.m, id, "198.19.4.1", map[string]string{requestAddressType: gatewayType}); err != nil || got != gw {
			t.Fatalf("%s: gateway %q, %v", n.m.o.HostID, got, err)
		}
		if got, err := request(n.m, id, addr(n.task), nil); err != nil || got != n.task {
			t.Fatalf("%s: confirm %s: %q, %v", n.m.o.HostID, n.task, got, err)
		}
	}
	// a leader restart re-requests what the allocator holds
	if got, err := request(h1, id, addr(t2), serial); err != nil || got != t2 {
		t.Fatalf("re-request %s: %q, %v", t2, got, err)
	}
	// a new task does not get a leased address
	if t3 := mustRequest(t, h1, id, "", serial).String(); t3 == t1 || t3 == t2 || t3 == gw {
		t.Fatalf("new task got leased address %s", t3)
	}

	// nodes leave: addresses, then the network
	for _, n := range []struct {
		m    *IPAM
		task string
	}{{h1, t1}, {h2, t2}} {
		if err := n.m.ReleaseAddress(ctx, &ipamapi.ReleaseAddressRequest{PoolID: id, Address: addr(n.task)}); err != nil {
			t.Fatal(err)
		}
		if err := n.m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// the manager's allocator still holds the pool after its own node left
	if _, err := request(h1, id, "", serial); err != nil {
		t.Fatalf("pool gone while the allocator holds it: %v", err)
	}
	releasePool(t, h1, id)
	requireEmpty(t, s)
}

// TestLocalScopeRefusesWhatGlobalAccepts: standalone hosts keep refusing
// a second pool request and a leased static address.
func TestLocalScopeRefusesWhatGlobalAccepts(t *testing.T) {
	s, _ := openStore(t)
	m := New(Options{Store: s, HostID: "h1", Scope: "local"})
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.4.0/24"})
	if _, err := m.RequestPool(context.Background(), &ipamapi.RequestPoolRequest{Pool: "198.19.4.0/24"}); err == nil {
		t.Error("second RequestPool on one host accepted in local scope")
	}
	if _, err := request(m, id, "198.19.4.9", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := request(m, id, "198.19.4.9", nil); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("leased static address in local scope: %v", err)
	}
}
