package ipam

import (
	"context"
	"net/netip"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store/keys"
	"github.com/vxnet/vxnet/store/storetest"
)

// The reconcile round's pool reads, PoolState of each network and
// ReleaseLost's look at every pool of the cluster, read no pool record
// that did not change since the last round (each grows with the pool's
// hosts; both read every record in full every round before), and read a
// pool again once another host joined it.
func TestReconcilePoolReadsOnlyWhenChanged(t *testing.T) {
	s, _ := openStore(t)
	r := &storetest.ValueReads{Store: s, Prefix: keys.Pools}
	h1, h2 := New(Options{Store: r, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	ctx := context.Background()
	subnets := []string{"198.19.3.0/24", "198.19.4.0/24"}
	for _, sub := range subnets {
		requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: sub})
	}
	inUse := func(context.Context) (map[string]bool, error) {
		return map[string]bool{"198.19.3.0_24": true, "198.19.4.0_24": true}, nil
	}
	round := func() {
		t.Helper()
		for _, sub := range subnets {
			if member, _, err := h1.PoolState(ctx, netip.MustParsePrefix(sub)); err != nil || !member {
				t.Fatalf("PoolState(%s) = member %v, %v; want member", sub, member, err)
			}
		}
		if released, err := h1.ReleaseLost(ctx, inUse); err != nil || len(released) > 0 {
			t.Fatalf("ReleaseLost released %v, %v; want nothing", released, err)
		}
	}
	round()
	r.Take()
	round()
	if n := r.Take(); n != 0 {
		t.Fatalf("a round with no pool changed read %d pool records; want none", n)
	}
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: subnets[0]})
	round()
	if n := r.Take(); n != 1 {
		t.Fatalf("a round after another host joined one pool read %d pool records; want 1", n)
	}
}

// RequestPool reads no other pool's record: its overlap check lists the
// pools' keys alone (every RequestPool of every host listed every pool
// record, each growing with its hosts).
func TestRequestPoolReadsNoOtherPool(t *testing.T) {
	s, _ := openStore(t)
	h2 := New(Options{Store: s, HostID: "h2"})
	for _, sub := range []string{"198.19.3.0/24", "198.19.4.0/24"} {
		requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: sub})
	}
	r := &storetest.ValueReads{Store: s, Prefix: keys.Pools}
	requestPool(t, New(Options{Store: r, HostID: "h1"}), ipamapi.RequestPoolRequest{Pool: "198.19.5.0/24"})
	if n := r.Take(); n != 0 {
		t.Fatalf("RequestPool of a new subnet read %d pool records; want none", n)
	}
}

// PoolMembers answers for every pool in one index check (reconcile asks
// it for every network of the host every round; PoolState per network
// was a request each), and reads a pool again only once it changed.
func TestPoolMembersChecksOnce(t *testing.T) {
	s, _ := openStore(t)
	r := &storetest.ValueReads{Store: s, Prefix: keys.Pools}
	h1, h2 := New(Options{Store: r, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	ctx := context.Background()
	var subnets []netip.Prefix
	for _, sub := range []string{"198.19.3.0/24", "198.19.4.0/24", "198.19.5.0/24"} {
		requestNetwork(t, h1, ipamapi.RequestPoolRequest{Pool: sub})
		subnets = append(subnets, netip.MustParsePrefix(sub))
	}
	theirs := netip.MustParsePrefix("198.19.6.0/24")
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: theirs.String()})
	ask := func() map[netip.Prefix]bool {
		t.Helper()
		member, err := h1.PoolMembers(ctx, append(subnets, theirs))
		if err != nil {
			t.Fatal(err)
		}
		return member
	}
	ask()
	r.Take()
	r.TakeChecks()
	member := ask()
	for _, s := range subnets {
		if !member[s] {
			t.Errorf("PoolMembers: h1 is no member of %s; want member", s)
		}
	}
	if member[theirs] {
		t.Errorf("PoolMembers: h1 is a member of %s, which only h2 requested", theirs)
	}
	if n, c := r.Take(), r.TakeChecks(); n != 0 || c != 1 {
		t.Errorf("PoolMembers of 4 unchanged pools: %d records read, %d index checks; want 0 and 1", n, c)
	}
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: subnets[0].String()})
	ask()
	if n, c := r.Take(), r.TakeChecks(); n != 1 || c != 1 {
		t.Errorf("PoolMembers after h2 joined one pool: %d records read, %d index checks; want 1 and 1", n, c)
	}
}

// A create whose held pool record another host wrote meanwhile loses
// nothing: the CAS from the held copy fails, the record is read again
// and both hosts' changes stay (change 22).
func TestHeldPoolMovedByAnotherHost(t *testing.T) {
	s, _ := openStore(t)
	h1, h2 := New(Options{Store: s, HostID: "h1"}), New(Options{Store: s, HostID: "h2"})
	ctx := context.Background()
	id := requestPool(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24"})
	requestPool(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.3.0/24"}) // h1's copy is stale now
	gw, err := h1.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: id, Options: map[string]string{requestAddressType: gatewayType}})
	if err != nil || gw.Address != "198.19.3.1/24" {
		t.Fatalf("gateway: %+v, %v; want 198.19.3.1/24", gw, err)
	}
	if err := h1.SetupDone(ctx, netip.MustParsePrefix("198.19.3.0/24")); err != nil {
		t.Fatal(err)
	}
	p, err := h1.pool(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Hosts["h1"] || !p.Hosts["h2"] || p.Setup["h1"] || !p.Setup["h2"] || p.Gateway.String() != "198.19.3.1" {
		t.Errorf("pool after both requests: hosts %v, setup %v, gateway %v; want h1 and h2 users, h2 alone in setup, gateway 198.19.3.1", p.Hosts, p.Setup, p.Gateway)
	}
}
