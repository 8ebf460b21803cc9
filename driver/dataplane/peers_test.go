package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelPeers reads vxlan0's permanent neighbours ("ip mac") and remote FDB
// entries ("mac vtep"), and counts the entries that carry a master (the
// bridge's own), which SetPeers must never touch.
func kernelPeers(t *testing.T, h *testHost, vni uint32) (neigh, fdb []string, bridgeOwn int) {
	t.Helper()
	nh := h.nsHandle(t, vni)
	idx := mustLinkIn(t, nh, vxlanName).Attrs().Index
	ns, err := nh.NeighList(idx, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list neighbours: %v", err)
	}
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 {
			neigh = append(neigh, fmt.Sprintf("%s %s", n.IP, n.HardwareAddr))
		}
	}
	fs, err := nh.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		t.Fatalf("list fdb: %v", err)
	}
	for _, f := range fs {
		switch {
		case f.MasterIndex != 0:
			bridgeOwn++
		case f.IP != nil:
			if f.State&netlink.NUD_PERMANENT == 0 || f.Flags&netlink.NTF_SELF == 0 {
				t.Errorf("fdb entry %s → %s: state %#x flags %#x", f.HardwareAddr, f.IP, f.State, f.Flags)
			}
			fdb = append(fdb, fmt.Sprintf("%s %s", f.HardwareAddr, f.IP))
		}
	}
	slices.Sort(neigh)
	slices.Sort(fdb)
	return neigh, fdb, bridgeOwn
}

func peer(ip, mac, vtep string) Peer {
	m, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return Peer{IP: netip.MustParseAddr(ip), MAC: m, VTEP: net.ParseIP(vtep)}
}

func TestSetPeers(t *testing.T) {
	const vni = 4301
	h := setupNetwork(t, vni)
	p1 := peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2")
	p2 := peer("2001:db8:19:1::3", "02:42:c6:13:00:03", "198.18.0.3")
	p3 := peer("198.19.1.4", "02:42:c6:13:00:04", "198.18.0.4")
	_, _, own := kernelPeers(t, h, vni)
	steps := []struct {
		name  string
		peers []Peer
		neigh []string
		fdb   []string
	}{
		{"add v4 and v6", []Peer{p1, p2},
			[]string{"198.19.1.2 02:42:c6:13:00:02", "2001:db8:19:1::3 02:42:c6:13:00:03"},
			[]string{"02:42:c6:13:00:02 198.18.0.2", "02:42:c6:13:00:03 198.18.0.3"}},
		{"idempotent", []Peer{p2, p1},
			[]string{"198.19.1.2 02:42:c6:13:00:02", "2001:db8:19:1::3 02:42:c6:13:00:03"},
			[]string{"02:42:c6:13:00:02 198.18.0.2", "02:42:c6:13:00:03 198.18.0.3"}},
		{"move p1, drop p2, add p3",
			[]Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.9"), p3},
			[]string{"198.19.1.2 02:42:c6:13:00:02", "198.19.1.4 02:42:c6:13:00:04"},
			[]string{"02:42:c6:13:00:02 198.18.0.9", "02:42:c6:13:00:04 198.18.0.4"}},
		{"new mac for an ip", []Peer{peer("198.19.1.4", "02:42:c6:13:00:05", "198.18.0.4")},
			[]string{"198.19.1.4 02:42:c6:13:00:05"},
			[]string{"02:42:c6:13:00:05 198.18.0.4"}},
		{"empty", nil, nil, nil},
	}
	for _, s := range steps {
		if err := h.plane.SetPeers(vni, s.peers); err != nil {
			t.Fatalf("%s: SetPeers: %v", s.name, err)
		}
		neigh, fdb, own2 := kernelPeers(t, h, vni)
		if !slices.Equal(neigh, s.neigh) {
			t.Errorf("%s: neighbours %q, want %q", s.name, neigh, s.neigh)
		}
		if !slices.Equal(fdb, s.fdb) {
			t.Errorf("%s: fdb %q, want %q", s.name, fdb, s.fdb)
		}
		if own2 != own || own == 0 {
			t.Errorf("%s: bridge's own fdb entries %d, were %d", s.name, own2, own)
		}
	}
}
