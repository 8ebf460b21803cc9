package dataplane

import (
	"net/netip"
	"testing"
	"time"
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
	h.plane.mu.RLock() // an endpoint call in flight
	done := make(chan error, 1)
	go func() { done <- h.plane.EnsureNetwork(c) }()
	select {
	case err := <-done:
		h.plane.mu.RUnlock()
		if err != nil {
			t.Fatalf("EnsureNetwork of an intact network: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.plane.mu.RUnlock()
		<-done
		t.Fatal("EnsureNetwork of an intact network waited for an endpoint call to end: it holds the Plane's lock alone")
	}

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
