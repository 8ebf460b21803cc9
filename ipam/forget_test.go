package ipam

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// ForgetHost releases the host's leases, drops it from every pool's
// memberships and the subnet index, removes the pools only it used
// (leases first), leaves the other hosts' leases and aux reservations,
// and finds nothing the second time. A host cannot forget itself.
func testForgetHost(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	ctx := context.Background()
	h1, h2 := New(Options{Store: s, HostID: "h1"}), New(Options{Store: open(t), HostID: "h2"})
	g2 := New(Options{Store: open(t), HostID: "h2", Scope: "global"})
	shared := requestPool(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.50.0/24"})
	mustRequest(t, h1, shared, "198.19.50.250", nil) // aux, in h1's setup phase
	if err := h1.SetupDone(ctx, netip.MustParsePrefix("198.19.50.0/24")); err != nil {
		t.Fatal(err)
	}
	requestNetwork(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.50.0/24"})
	alone := requestPool(t, h2, ipamapi.RequestPoolRequest{Pool: "198.19.51.0/24"}) // still in setup
	swarm := requestPool(t, g2, ipamapi.RequestPoolRequest{Pool: "198.19.52.0/24"})
	requestPool(t, g2, ipamapi.RequestPoolRequest{Pool: "198.19.52.0/24"}) // an extra reference
	mine := mustRequest(t, h1, shared, "", nil).Addr()
	var theirs []netip.Addr
	for _, id := range []string{shared, shared, alone, swarm} {
		m := h2
		if id == swarm {
			m = g2
		}
		theirs = append(theirs, mustRequest(t, m, id, "", nil).Addr())
	}

	for _, bad := range []string{""} {
		if _, _, err := h1.ForgetHost(ctx, bad); err == nil {
			t.Errorf("ForgetHost(%q) on h1 succeeded", bad)
		}
	}
	if _, _, err := h1.ForgetHost(ctx, "h1"); err == nil || !strings.Contains(err.Error(), `"h1"`) || !strings.Contains(err.Error(), "own ID") {
		t.Errorf("ForgetHost of itself: %v", err)
	}
	leases, pools, err := h1.ForgetHost(ctx, "h2")
	if err != nil || leases != 4 || pools != 3 {
		t.Fatalf("ForgetHost(h2) = %d leases, %d pools, %v; want 4, 3", leases, pools, err)
	}
	for _, a := range theirs[:2] {
		if l, ok := leaseAt(t, s, shared, a.String()); ok {
			t.Errorf("h2's lease %s left: %+v", a, l)
		}
	}
	if l, ok := leaseAt(t, s, shared, mine.String()); !ok || l.Host != "h1" {
		t.Errorf("h1's lease %s: %+v, present %v", mine, l, ok)
	}
	if l, ok := leaseAt(t, s, shared, "198.19.50.250"); !ok || !l.Aux {
		t.Errorf("aux reservation: %+v, present %v", l, ok)
	}
	p, _, err := store.GetJSON[Pool](ctx, s, keys.Pool(shared))
	if err != nil || p.uses("h2") || !p.Hosts["h1"] {
		t.Fatalf("shared pool after forgetting h2: %+v, %v", p, err)
	}
	for _, id := range []string{alone, swarm} {
		if _, err := s.Get(ctx, keys.Pool(id)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pool %s only h2 used: %v", id, err)
		}
		if kvs, _, err := s.List(ctx, keys.Leases(id)); err != nil || len(kvs) != 0 {
			t.Errorf("leases of removed pool %s: %v, %v", id, kvs, err)
		}
	}
	idx, _, err := store.GetJSON[subnetIndex](ctx, s, keys.PoolIndex)
	if err != nil || len(idx.Pools) != 1 || len(idx.Pools[shared]) != 1 || !idx.Pools[shared]["h1"] {
		t.Fatalf("subnet index after forgetting h2: %+v, %v; want only %s by h1", idx, err, shared)
	}
	if leases, pools, err := h1.ForgetHost(ctx, "h2"); err != nil || leases != 0 || pools != 0 {
		t.Fatalf("second ForgetHost(h2) = %d, %d, %v; want 0, 0", leases, pools, err)
	}
	release(t, h1, shared, mine.String())
	releasePool(t, h1, shared)
	requireEmpty(t, s)
}

// A write that fails at any point of RequestPool leaves nothing behind;
// at any point of the last user's ReleasePool no lease is left without
// its pool, and the replay of the release removes everything.
func testFailuresLeaveNothing(t *testing.T, open func(*testing.T) store.Store) {
	ctx := context.Background()
	f := &failingStore{Store: open(t)}
	m := New(Options{Store: f, HostID: "h1"})
	req := ipamapi.RequestPoolRequest{Pool: "198.19.60.0/24"}
	for at := 1; ; at++ {
		f.writes, f.failAt = 0, at
		resp, err := m.RequestPool(ctx, &req)
		if err == nil {
			f.failAt = 0
			releasePool(t, m, resp.PoolID)
			requireEmpty(t, f)
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("write %d failed: %v, want the injected failure", at, err)
		}
		requireEmpty(t, f)
	}
	for at := 1; ; at++ {
		f.failAt = 0
		id := requestNetwork(t, m, req)
		mustRequest(t, m, id, "", gwOpts)
		for range 3 {
			mustRequest(t, m, id, "", nil)
		}
		f.writes, f.failAt = 0, at
		err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id})
		f.failAt = 0
		_, perr := f.Get(ctx, keys.Pool(id))
		leases, lerr := m.Leases(ctx, id)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if errors.Is(perr, store.ErrNotFound) && len(leases) > 0 {
			t.Fatalf("write %d failed (%v): %d leases left of a pool that is gone", at, err, len(leases))
		}
		if err == nil {
			requireEmpty(t, f)
			break
		}
		releasePool(t, m, id) // the journal's replay
		requireEmpty(t, f)
	}
}
