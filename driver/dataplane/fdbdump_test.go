package dataplane

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What SetPeers reads of vxlan0's FDB does not grow with the local
// endpoints, whose bridge ports each add permanent entries of their own
// (issue #13), and is what NeighList finds for vxlan0.
func TestPortFDBDoesNotGrowWithEndpoints(t *testing.T) {
	const vni = 4311
	h := setupNetwork(t, vni)
	peers := []Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2"), peer("198.19.1.3", "02:42:c6:13:00:03", "198.18.0.3")}
	if err := h.plane.SetPeers(vni, peers); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	nh := h.nsHandle(t, vni)
	idx := mustLinkIn(t, nh, vxlanName).Attrs().Index
	sent := func(endpoints int) int {
		t.Helper()
		for i := range endpoints {
			if _, err := h.plane.EnsureEndpoint(testEndpoint(vni, i+1)); err != nil {
				t.Fatalf("EnsureEndpoint %d: %v", i+1, err)
			}
		}
		var (
			got []netlink.Neigh
			n   int
		)
		if err := inNetns(h.plane.log, h.plane.nsPath(vni), func() error {
			var err error
			got, n, err = portFDB(idx)
			return err
		}); err != nil {
			t.Fatalf("portFDB: %v", err)
		}
		want, err := nh.NeighList(idx, unix.AF_BRIDGE)
		if err != nil {
			t.Fatalf("NeighList: %v", err)
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("with %d endpoints: portFDB found %d entries of vxlan0, NeighList %d", endpoints, len(got), len(want))
		}
		all, err := nh.NeighListExecute(netlink.Ndmsg{Family: unix.AF_BRIDGE})
		if err != nil {
			t.Fatalf("NeighList: %v", err)
		}
		t.Logf("%d endpoints: the kernel sent %d entries for vxlan0; the namespace has %d", endpoints, n, len(all))
		return n
	}
	few, many := sent(1), sent(12)
	if few != many {
		t.Fatalf("vxlan0's FDB dump got %d entries from the kernel with 1 endpoint, %d with 12: it reads every port's", few, many)
	}
}
