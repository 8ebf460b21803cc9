package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// TestSafety runs the address-safety cases of issue #10 on bbolt and on a
// real Consul.
func TestSafety(t *testing.T) {
	runOnStores(t, []storeCase{
		{"NonceInEveryWrite", testNonceInEveryWrite},
		{"ReleaseOnlyWhatIsHeld", testReleaseOnlyWhatIsHeld},
		{"GlobalScopeMembersRelease", testGlobalScopeMembersRelease},
		{"SpecialAddressesRefused", testSpecialAddressesRefused},
		{"OverlapRace", testOverlapRace},
		{"SameSubnetRace", testSameSubnetRace},
		{"ForgetHost", testForgetHost},
		{"FailuresLeaveNothing", testFailuresLeaveNothing},
	})
}

func leaseAt(t *testing.T, s store.Store, id, addr string) (Lease, bool) {
	t.Helper()
	l, _, err := store.GetJSON[Lease](context.Background(), s, keys.Lease(id, netip.MustParseAddr(addr)))
	if errors.Is(err, store.ErrNotFound) {
		return Lease{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return *l, true
}

func release(t *testing.T, m *IPAM, id, addr string) {
	t.Helper()
	if err := m.ReleaseAddress(context.Background(), &ipamapi.ReleaseAddressRequest{PoolID: id, Address: addr}); err != nil {
		t.Fatalf("%s: ReleaseAddress(%s): %v", m.o.HostID, addr, err)
	}
}

func releasePool(t *testing.T, m *IPAM, id string) {
	t.Helper()
	if err := m.ReleasePool(context.Background(), &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
		t.Fatalf("%s: ReleasePool(%s): %v", m.o.HostID, id, err)
	}
}

// releaseGone releases addr on m and wants its lease gone.
func releaseGone(t *testing.T, m *IPAM, id, addr string) {
	t.Helper()
	release(t, m, id, addr)
	if l, ok := leaseAt(t, m.o.Store, id, addr); ok {
		t.Fatalf("%s's release of %s left %+v", m.o.HostID, addr, l)
	}
}

// leaveAll releases pool id on every host, in order, and wants the store
// empty then.
func leaveAll(t *testing.T, id string, hosts ...*IPAM) {
	t.Helper()
	for _, m := range hosts {
		releasePool(t, m, id)
	}
	requireEmpty(t, hosts[0].o.Store)
}

func mustRequest(t *testing.T, m *IPAM, id, addr string, opts map[string]string) netip.Prefix {
	t.Helper()
	a, err := request(m, id, addr, opts)
	if err != nil {
		t.Fatalf("%s: RequestAddress(%q): %v", m.o.HostID, addr, err)
	}
	return mustPrefix(t, a)
}

// Every record the IPAM writes carries a nonce that differs between two
// writes of equal content; a lease written before nonces existed still
// reads and releases.
func testNonceInEveryWrite(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	ctx := context.Background()
	m := New(Options{Store: s, HostID: "h1"})
	id := requestPool(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.7.0/24", SubPool: "198.19.7.0/25"})
	aux := mustRequest(t, m, id, "198.19.7.200", nil) // setup phase: aux reservation
	if err := m.SetupDone(ctx, netip.MustParsePrefix("198.19.7.0/24")); err != nil {
		t.Fatal(err)
	}
	a1 := mustRequest(t, m, id, "", nil)
	a2 := mustRequest(t, m, id, "198.19.7.77", nil)
	nonces := map[string]string{}
	for _, key := range []string{keys.PoolIndex, keys.Pool(id), keys.Lease(id, aux.Addr()), keys.Lease(id, a1.Addr()), keys.Lease(id, a2.Addr())} {
		kv, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Nonce string }
		if err := json.Unmarshal(kv.Value, &v); err != nil || len(v.Nonce) != 16 {
			t.Fatalf("%s = %s: no 16-digit nonce (%v)", key, kv.Value, err)
		}
		if other, dup := nonces[v.Nonce]; dup {
			t.Fatalf("%s and %s carry the same nonce %s", key, other, v.Nonce)
		}
		nonces[v.Nonce] = key
	}
	// a lease of an older vxnet: no nonce
	old := keys.Lease(id, netip.MustParseAddr("198.19.7.9"))
	if _, err := s.Put(ctx, old, []byte(`{"host":"h1"}`)); err != nil {
		t.Fatal(err)
	}
	leases, err := m.Leases(ctx, id)
	if err != nil || leases[netip.MustParseAddr("198.19.7.9")].Host != "h1" {
		t.Fatalf("old lease read as %+v, %v", leases, err)
	}
	for _, a := range []string{"198.19.7.9", a1.Addr().String(), a2.Addr().String()} {
		release(t, m, id, a)
	}
	leaveAll(t, id, m)
}

// A host releases only its own leases: another host's release leaves the
// lease, and the holder's own release removes it.
func testReleaseOnlyWhatIsHeld(t *testing.T, open func(*testing.T) store.Store) {
	h1, h2 := New(Options{Store: open(t), HostID: "h1"}), New(Options{Store: open(t), HostID: "h2"})
	id := requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	a := mustRequest(t, h1, id, "", nil).Addr().String()
	release(t, h2, id, a)
	if l, ok := leaseAt(t, h1.o.Store, id, a); !ok || l.Host != "h1" {
		t.Fatalf("h2's release of h1's %s left %+v (present %v), want h1's lease", a, l, ok)
	}
	// h2 cannot take it either
	if _, err := request(h2, id, a, nil); err == nil || !strings.Contains(err.Error(), a+" is already in use") {
		t.Fatalf("h2 static %s after its release: %v", a, err)
	}
	releaseGone(t, h1, id, a)
	leaveAll(t, id, h1, h2)
}

// In global scope (swarm) a user of the pool releases the manager's lease
// of its task; a host that is not a user still cannot.
func testGlobalScopeMembersRelease(t *testing.T, open func(*testing.T) store.Store) {
	mgr := New(Options{Store: open(t), HostID: "mgr", Scope: "global"})
	node := New(Options{Store: open(t), HostID: "node", Scope: "global"})
	other := New(Options{Store: open(t), HostID: "other", Scope: "global"})
	req := ipamapi.RequestPoolRequest{Pool: "198.19.9.0/24", Options: serial}
	id := requestPool(t, mgr, req)
	task := mustRequest(t, mgr, id, "", serial).Addr().String()
	release(t, other, id, task)
	if _, ok := leaseAt(t, mgr.o.Store, id, task); !ok {
		t.Fatalf("a host without the pool released task address %s", task)
	}
	requestPool(t, node, req)
	if got := mustRequest(t, node, id, task, nil).Addr().String(); got != task {
		t.Fatalf("node confirmed %s as %s", task, got)
	}
	releaseGone(t, node, id, task) // the manager's lease of the node's task
	leaveAll(t, id, node, mgr)
}

// Static addresses that are the network, broadcast or gateway address are
// refused naming the address and the subnet; an aux reservation of them
// is accepted (Docker never gives it to a container).
func testSpecialAddressesRefused(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	ctx := context.Background()
	m := New(Options{Store: s, HostID: "h1"})
	id4 := requestPool(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.10.0/30"})
	mustRequest(t, m, id4, "198.19.10.3", nil) // aux: setup phase
	if err := m.SetupDone(ctx, netip.MustParsePrefix("198.19.10.0/30")); err != nil {
		t.Fatal(err)
	}
	id6 := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "fd00:198:19:10::/64", V6: true})
	for _, tt := range []struct {
		id, addr string
		opts     map[string]string
		want     string
	}{
		{id4, "198.19.10.0", gwOpts, "gateway 198.19.10.0 is the network address of subnet 198.19.10.0/30"},
		{id4, "198.19.10.3", gwOpts, "gateway 198.19.10.3 is the broadcast address of subnet 198.19.10.0/30"},
		{id4, "198.19.10.0", nil, "address 198.19.10.0 is the network address of subnet 198.19.10.0/30"},
		{id4, "198.19.10.3", nil, "address 198.19.10.3 is the broadcast address of subnet 198.19.10.0/30"},
		{id4, "198.19.10.1", nil, "address 198.19.10.1 is the gateway of subnet 198.19.10.0/30"},
		{id6, "fd00:198:19:10::", nil, "address fd00:198:19:10:: is the network address of subnet fd00:198:19:10::/64"},
	} {
		if tt.addr == "198.19.10.1" {
			mustRequest(t, m, id4, "", gwOpts)
		}
		_, err := request(m, tt.id, tt.addr, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RequestAddress(%s, %v) = %v, want error containing %q", tt.addr, tt.opts, err, tt.want)
		}
	}
	// the one address left is still handed out, and nothing more
	if a := mustRequest(t, m, id4, "", nil); a.Addr() != netip.MustParseAddr("198.19.10.2") {
		t.Fatalf("got %s, want 198.19.10.2", a)
	}
	if a, err := request(m, id4, "", nil); err == nil {
		t.Fatalf("full /30 gave %s", a)
	}
	releasePool(t, m, id4)
	releasePool(t, m, id6)
	requireEmpty(t, s)
}

// raceRounds is how often the pool races run.
const raceRounds = 50

// racePools runs RequestPool for subnets[i] on hosts[i], all at once,
// and returns each one's pool ID and error.
func racePools(hosts [2]*IPAM, subnets [2]string) (ids [2]string, errs [2]error) {
	var wg sync.WaitGroup
	for i, m := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.RequestPool(context.Background(), &ipamapi.RequestPoolRequest{Pool: subnets[i]})
			if errs[i] = err; err == nil {
				ids[i] = resp.PoolID
			}
		}()
	}
	wg.Wait()
	return ids, errs
}

// Two hosts request overlapping subnets at once: exactly one wins, and the
// loser's error names both subnets.
func testOverlapRace(t *testing.T, open func(*testing.T) store.Store) {
	hosts := [2]*IPAM{New(Options{Store: open(t), HostID: "h1"}), New(Options{Store: open(t), HostID: "h2"})}
	subnets := [2]string{"198.19.40.0/24", "198.19.40.0/23"}
	wins := [2]int{}
	for round := range raceRounds {
		ids, errs := racePools(hosts, [2]string{subnets[round%2], subnets[1-round%2]})
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v / %v, want exactly one winner", round, errs[0], errs[1])
		}
		winner := 0
		if errs[0] != nil {
			winner = 1
		}
		wins[winner]++
		if msg := errs[1-winner].Error(); !strings.Contains(msg, subnets[0]) || !strings.Contains(msg, subnets[1]) {
			t.Fatalf("round %d: loser's error %q does not name both subnets", round, msg)
		}
		leaveAll(t, ids[winner], hosts[winner])
	}
	t.Logf("wins h1 %d, h2 %d of %d rounds", wins[0], wins[1], raceRounds)
}

// Two hosts request the same subnet at once: both win, in one pool.
func testSameSubnetRace(t *testing.T, open func(*testing.T) store.Store) {
	hosts := [2]*IPAM{New(Options{Store: open(t), HostID: "h1"}), New(Options{Store: open(t), HostID: "h2"})}
	for round := range raceRounds {
		ids, errs := racePools(hosts, [2]string{"198.19.41.0/24", "198.19.41.0/24"})
		if errs[0] != nil || errs[1] != nil || ids[0] != ids[1] {
			t.Fatalf("round %d: pools %q, %q, errors %v / %v; want one pool for both", round, ids[0], ids[1], errs[0], errs[1])
		}
		p, _, err := store.GetJSON[Pool](context.Background(), hosts[0].o.Store, keys.Pool(ids[0]))
		if err != nil || !p.Hosts["h1"] || !p.Hosts["h2"] {
			t.Fatalf("round %d: pool %+v, %v; want both hosts", round, p, err)
		}
		leaveAll(t, ids[0], hosts[0], hosts[1])
	}
}
