package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

func openStore(t *testing.T) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vxnet.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func requestPool(t *testing.T, m *IPAM, r ipamapi.RequestPoolRequest) string {
	t.Helper()
	resp, err := m.RequestPool(context.Background(), &r)
	if err != nil {
		t.Fatalf("RequestPool(%+v): %v", r, err)
	}
	return resp.PoolID
}

// requestNetwork is RequestPool plus what the driver does once its network
// exists: the end of the pool's setup phase (aux addresses).
func requestNetwork(t *testing.T, m *IPAM, r ipamapi.RequestPoolRequest) string {
	t.Helper()
	id := requestPool(t, m, r)
	p, err := ParsePoolID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetupDone(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return id
}

// --aux-address reservations (preferred addresses before the network
// exists) are shared by the hosts of a pool; static --ip ones are not.
func TestAuxAddressesShared(t *testing.T) {
	s, _ := openStore(t)
	h1, h2 := New(Options{Store: s, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	ctx := context.Background()
	id := requestPool(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.7.0/24"})
	if a, err := request(h1, id, "198.19.7.200", nil); err != nil || a != "198.19.7.200/24" {
		t.Fatalf("aux on h1: %q, %v", a, err)
	}
	p, err := ParsePoolID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.SetupDone(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := request(h1, id, "198.19.7.200", nil); err == nil {
		t.Fatal("a static --ip got the aux address")
	}
	requestPool(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.7.0/24"})
	if a, err := request(h2, id, "198.19.7.200", nil); err != nil || a != "198.19.7.200/24" {
		t.Fatalf("aux on h2: %q, %v", a, err)
	}
	// h2's network exists now; releasing the aux address keeps it reserved
	if err := h2.SetupDone(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := h2.ReleaseAddress(ctx, &ipamapi.ReleaseAddressRequest{PoolID: id, Address: "198.19.7.200"}); err != nil {
		t.Fatal(err)
	}
	// Lease the whole pool: every host address but the aux one is handed
	// out (no gateway was asked for), then "no free address".
	aux, leased := netip.MustParseAddr("198.19.7.200"), 0
	for {
		a, err := request(h1, id, "", nil)
		if err != nil {
			if !strings.Contains(err.Error(), "no free address") {
				t.Fatalf("lease %d: %v, want only \"no free address\" once the pool is full", leased+1, err)
			}
			break
		}
		if mustPrefix(t, a).Addr() == aux {
			t.Fatalf("aux address handed to a container after %d leases", leased)
		}
		if leased++; leased > 254 {
			t.Fatalf("%d leases from a /24", leased)
		}
	}
	if leased != 253 {
		t.Fatalf("%d addresses leased from 198.19.7.0/24, want 253 (its 254 host addresses less the aux one)", leased)
	}
	for _, m := range []*IPAM{h1, h2} {
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
			t.Fatal(err)
		}
	}
	requireEmpty(t, s)
}

func request(m *IPAM, pool, addr string, opts map[string]string) (string, error) {
	resp, err := m.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: pool, Address: addr, Options: opts})
	if err != nil {
		return "", err
	}
	return resp.Address, nil
}

var gwOpts = map[string]string{requestAddressType: gatewayType}

func TestPoolLifecycle(t *testing.T) {
	s, _ := openStore(t)
	m := New(Options{Store: s, HostID: "h1"})
	ctx := context.Background()
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24"})
	if gw, err := request(m, id, "", gwOpts); err != nil || gw != "198.19.1.1/24" {
		t.Fatalf("gateway = %q, %v", gw, err)
	}
	first, err := request(m, id, "", nil)
	if err != nil || first != "198.19.1.2/24" {
		t.Fatalf("first address = %q, %v", first, err)
	}
	if _, err := request(m, id, "198.19.1.2", nil); err == nil || !strings.Contains(err.Error(), "198.19.1.2 is already in use") {
		t.Fatalf("static conflict: %v", err)
	}
	if _, err := request(m, id, "198.19.1.1", nil); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("static gateway: %v", err)
	}
	if _, err := request(m, id, "198.19.2.1", nil); err == nil || !strings.Contains(err.Error(), "not in subnet") {
		t.Fatalf("static outside: %v", err)
	}
	if got, err := request(m, id, "198.19.1.77", nil); err != nil || got != "198.19.1.77/24" {
		t.Fatalf("static = %q, %v", got, err)
	}
	for range 2 { // idempotent
		if err := m.ReleaseAddress(ctx, &ipamapi.ReleaseAddressRequest{PoolID: id, Address: "198.19.1.2"}); err != nil {
			t.Fatal(err)
		}
	}
	// the cursor moves on: a just-released address is not reused at once
	if next, err := request(m, id, "", nil); err != nil || next != "198.19.1.3/24" {
		t.Fatalf("after release got %q, %v, want 198.19.1.3/24", next, err)
	}
	for range 2 {
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
			t.Fatal(err)
		}
	}
	requireEmpty(t, s)
}

func TestPoolRequestErrors(t *testing.T) {
	s, _ := openStore(t)
	m := New(Options{Store: s, HostID: "h1"})
	requestPool(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	for _, tt := range []struct {
		req  ipamapi.RequestPoolRequest
		want string
	}{
		{ipamapi.RequestPoolRequest{}, "needs an explicit subnet"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.1.1/24"}, "not a network address"},
		{ipamapi.RequestPoolRequest{Pool: "garbage"}, `bad subnet "garbage"`},
		{ipamapi.RequestPoolRequest{Pool: "198.19.1.0/31"}, "too small"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24", V6: true}, "not an IPv6 subnet"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24", SubPool: "198.19.2.0/25"}, "not inside subnet"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24", Options: map[string]string{"foo": "bar"}}, `unknown IPAM option "foo"`},
		{ipamapi.RequestPoolRequest{Pool: "198.19.8.0/25"}, "198.19.8.0/25 overlaps vxnet pool 198.19.8.0/24"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.0.0/16"}, "198.19.0.0/16 overlaps vxnet pool 198.19.8.0/24"},
		{ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"}, "already used by another vxnet network on this host"},
	} {
		_, err := m.RequestPool(context.Background(), &tt.req)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RequestPool(%+v) = %v, want error containing %q", tt.req, err, tt.want)
		}
	}
	for _, id := range []string{"", "nope", "198.19.9.0_24"} {
		if _, err := request(m, id, "", nil); err == nil || !strings.Contains(err.Error(), "unknown pool ID") {
			t.Errorf("RequestAddress(%q) = %v", id, err)
		}
	}
}

// Two hosts on one store share the pool, its gateway and the addresses.
func TestTwoHostsShareOnePool(t *testing.T) {
	s, _ := openStore(t)
	h1, h2 := New(Options{Store: s, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	id := requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24", SubPool: "198.19.3.128/25"})
	if id2 := requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24", SubPool: "198.19.3.128/25"}); id2 != id {
		t.Fatalf("pool IDs differ: %q %q", id, id2)
	}
	g1 := mustRequest(t, h1, id, "", gwOpts)
	g2 := mustRequest(t, h2, id, "", gwOpts)
	if g1 != g2 {
		t.Fatalf("gateways differ: %s %s", g1, g2)
	}
	if _, err := request(h2, id, "198.19.3.9", gwOpts); err == nil {
		t.Fatal("a different gateway was accepted")
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := []*IPAM{h1, h2}[i%2]
			a, err := request(m, id, "", nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			if prev, dup := seen[a]; dup {
				t.Errorf("address %s handed out twice (%s and %d)", a, prev, i)
			}
			seen[a] = fmt.Sprint(i)
		}()
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Fatalf("%d distinct addresses, want 40", len(seen))
	}
	ipRange := netip.MustParsePrefix("198.19.3.128/25")
	for a := range seen {
		if p := mustPrefix(t, a); !ipRange.Contains(p.Addr()) || p.Bits() != 24 {
			t.Errorf("address %s outside the ip-range %s", a, ipRange)
		}
	}
	releasePool(t, h1, id)
	if _, err := request(h2, id, "", nil); err != nil {
		t.Fatalf("pool gone for h2 after h1 released it: %v", err)
	}
	releasePool(t, h2, id)
	requireEmpty(t, s)
}

// Leases survive a restart: a reopened store never hands out an address twice.
func TestPersistentAcrossRestart(t *testing.T) {
	s, path := openStore(t)
	m := New(Options{Store: s, HostID: "h1"})
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.4.0/29"})
	var got []string
	for range 3 {
		a, err := request(m, id, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	s.Close()
	s2, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	m2 := New(Options{Store: s2, HostID: "h1"})
	for range 3 {
		a, err := request(m2, id, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if a == g {
				t.Fatalf("address %s handed out again after restart", a)
			}
		}
		got = append(got, a)
	}
	// /29: 6 host addresses, all leased now
	if a, err := request(m2, id, "", nil); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Fatalf("full pool gave %q, %v", a, err)
	}
}

func TestIPv6Pool(t *testing.T) {
	s, _ := openStore(t)
	m := New(Options{Store: s, HostID: "h1"})
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "fd00:198:19::/64", V6: true})
	if gw, err := request(m, id, "", gwOpts); err != nil || gw != "fd00:198:19::1/64" {
		t.Fatalf("gateway %q, %v", gw, err)
	}
	if a, err := request(m, id, "", nil); err != nil || a != "fd00:198:19::2/64" {
		t.Fatalf("address %q, %v", a, err)
	}
}
