package dataplane

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// EnsureNetwork of an intact network, made every reconcile round, runs
// beside the endpoint calls: it needs no more than the shared lock they
// hold (holding it alone made every Join of the moment wait, issue #13).
// Drift is still repaired, holding the lock alone.
func TestEnsureNetworkIntactBesideEndpointCalls(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4113)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	besideEndpointCall(t, h, "EnsureNetwork of an intact network", func() error { return h.plane.EnsureNetwork(c) })

	nh := h.nsHandle(t, c.VNI)
	for _, drift := range []struct {
		what string
		make func() error
	}{
		{"br0 down", func() error { return nh.LinkSetDown(mustLinkIn(t, nh, bridgeName)) }},
		{"lo down", func() error { return nh.LinkSetDown(mustLinkIn(t, nh, "lo")) }},
		{"br0 MTU", func() error { return nh.LinkSetMTU(mustLinkIn(t, nh, bridgeName), c.MTU-10) }},
		{"vxlan0 MTU", func() error { return nh.LinkSetMTU(mustLinkIn(t, nh, vxlanName), c.MTU-10) }},
		{"gateway address gone", func() error { return nh.AddrDel(mustLinkIn(t, nh, bridgeName), nlAddr(c.Addresses[0])) }},
		{"stranger address on br0", func() error {
			return nh.AddrAdd(mustLinkIn(t, nh, bridgeName), nlAddr(netip.MustParsePrefix("198.19.9.9/32")))
		}},
		{"vxlan0 gone", func() error { return nh.LinkDel(mustLinkIn(t, nh, vxlanName)) }},
		{"br0 gone", func() error { return nh.LinkDel(mustLinkIn(t, nh, bridgeName)) }},
	} {
		if err := drift.make(); err != nil {
			t.Fatalf("%s: %v", drift.what, err)
		}
		if err := h.plane.EnsureNetwork(c); err != nil {
			t.Fatalf("EnsureNetwork after %s: %v", drift.what, err)
		}
		checkNetwork(t, h, c)
		if t.Failed() {
			t.Fatalf("not repaired: %s", drift.what)
		}
	}
}

// Networks, asked every reconcile round, runs beside the endpoint calls
// when there is no stale filter to remove (its look for them held the
// Plane's lock alone, issue #13); a stale one is still removed.
func TestNetworksBesideEndpointCalls(t *testing.T) {
	h := setupNetwork(t, 4114)
	var nets []uint32
	besideEndpointCall(t, h, "Networks", func() error {
		var err error
		nets, err = h.plane.Networks()
		return err
	})
	if !slices.Equal(nets, []uint32{4114}) {
		t.Fatalf("Networks = %v, want [4114]", nets)
	}
	if err := removeNetnsFile(h.plane.log, h.plane.nsPath(4114)); err != nil {
		t.Fatal(err)
	}
	if nets, err := h.plane.Networks(); err != nil || len(nets) != 0 {
		t.Fatalf("Networks after the namespace went: %v, %v; want none", nets, err)
	}
	if vnis, err := filterVNIs(); err != nil || slices.Contains(vnis, 4114) {
		t.Fatalf("filters after Networks: %v, %v; want vni 4114's gone", vnis, err)
	}
}

// besideEndpointCall runs fn in h's namespace while an endpoint call
// holds h's Plane's lock shared, and fails naming what when fn waits for
// it to end.
func besideEndpointCall(t *testing.T, h *testHost, what string, fn func() error) {
	t.Helper()
	p := h.plane
	p.mu.RLock()
	done := make(chan error, 1)
	go func() {
		// The thread enters the test host and dies with the goroutine.
		runtime.LockOSThread()
		if err := netns.Set(h.ns); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	select {
	case err := <-done:
		p.mu.RUnlock()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		p.mu.RUnlock()
		<-done
		t.Fatalf("%s waited for an endpoint call to end: it holds the Plane's lock alone", what)
	}
}
