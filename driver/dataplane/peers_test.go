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

// kernelState is what vxlan0 holds, as sorted strings: permanent
// neighbours ("ip mac"), VXLAN FDB entries ("mac vtep"), flood entries
// ("vtep"), static bridge entries ("mac"), and a count of the bridge's own
// permanent entries, which SetPeers must never touch.
type kernelState struct {
	neigh, fdb, flood, master []string
	bridgeOwn                 int
}

func kernelPeers(t *testing.T, h *testHost, vni uint32) kernelState {
	t.Helper()
	nh := h.nsHandle(t, vni)
	idx := mustLinkIn(t, nh, vxlanName).Attrs().Index
	ns, err := nh.NeighList(idx, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list neighbours: %v", err)
	}
	var k kernelState
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 {
			k.neigh = append(k.neigh, fmt.Sprintf("%s %s", n.IP, n.HardwareAddr))
		}
	}
	fs, err := nh.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		t.Fatalf("list fdb: %v", err)
	}
	for _, f := range fs {
		switch {
		case f.MasterIndex != 0 && f.State == netlink.NUD_NOARP:
			k.master = append(k.master, f.HardwareAddr.String())
		case f.MasterIndex != 0:
			k.bridgeOwn++
		case f.IP != nil:
			if f.State&netlink.NUD_PERMANENT == 0 || f.Flags&netlink.NTF_SELF == 0 {
				t.Errorf("fdb entry %s → %s: state %#x flags %#x", f.HardwareAddr, f.IP, f.State, f.Flags)
			}
			if f.HardwareAddr.String() == "00:00:00:00:00:00" {
				k.flood = append(k.flood, f.IP.String())
			} else {
				k.fdb = append(k.fdb, fmt.Sprintf("%s %s", f.HardwareAddr, f.IP))
			}
		}
	}
	for _, l := range [][]string{k.neigh, k.fdb, k.flood, k.master} {
		slices.Sort(l)
	}
	return k
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
	p4 := peer("198.19.1.5", "02:42:c6:13:00:06", "198.18.0.4") // same host as p3
	own := kernelPeers(t, h, vni).bridgeOwn
	steps := []struct {
		name  string
		peers []Peer
		want  kernelState
	}{
		{"add v4 and v6", []Peer{p1, p2}, kernelState{
			neigh:  []string{"198.19.1.2 02:42:c6:13:00:02", "2001:db8:19:1::3 02:42:c6:13:00:03"},
			fdb:    []string{"02:42:c6:13:00:02 198.18.0.2", "02:42:c6:13:00:03 198.18.0.3"},
			flood:  []string{"198.18.0.2", "198.18.0.3"},
			master: []string{"02:42:c6:13:00:02", "02:42:c6:13:00:03"}}},
		{"idempotent", []Peer{p2, p1}, kernelState{
			neigh:  []string{"198.19.1.2 02:42:c6:13:00:02", "2001:db8:19:1::3 02:42:c6:13:00:03"},
			fdb:    []string{"02:42:c6:13:00:02 198.18.0.2", "02:42:c6:13:00:03 198.18.0.3"},
			flood:  []string{"198.18.0.2", "198.18.0.3"},
			master: []string{"02:42:c6:13:00:02", "02:42:c6:13:00:03"}}},
		{"move p1, drop p2, add p3 and p4 on one host",
			[]Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.9"), p3, p4}, kernelState{
				neigh:  []string{"198.19.1.2 02:42:c6:13:00:02", "198.19.1.4 02:42:c6:13:00:04", "198.19.1.5 02:42:c6:13:00:06"},
				fdb:    []string{"02:42:c6:13:00:02 198.18.0.9", "02:42:c6:13:00:04 198.18.0.4", "02:42:c6:13:00:06 198.18.0.4"},
				flood:  []string{"198.18.0.4", "198.18.0.9"},
				master: []string{"02:42:c6:13:00:02", "02:42:c6:13:00:04", "02:42:c6:13:00:06"}}},
		{"new mac for an ip; the host keeps its flood entry while it has a peer",
			[]Peer{peer("198.19.1.4", "02:42:c6:13:00:05", "198.18.0.4")}, kernelState{
				neigh:  []string{"198.19.1.4 02:42:c6:13:00:05"},
				fdb:    []string{"02:42:c6:13:00:05 198.18.0.4"},
				flood:  []string{"198.18.0.4"},
				master: []string{"02:42:c6:13:00:05"}}},
		{"empty", nil, kernelState{}},
	}
	for _, s := range steps {
		if err := h.plane.SetPeers(vni, s.peers); err != nil {
			t.Fatalf("%s: SetPeers: %v", s.name, err)
		}
		k := kernelPeers(t, h, vni)
		for _, c := range []struct {
			what      string
			have, got []string
		}{{"neighbours", k.neigh, s.want.neigh}, {"fdb", k.fdb, s.want.fdb},
			{"flood entries", k.flood, s.want.flood}, {"bridge entries", k.master, s.want.master}} {
			if !slices.Equal(c.have, c.got) {
				t.Errorf("%s: %s %q, want %q", s.name, c.what, c.have, c.got)
			}
		}
		if k.bridgeOwn != own || own == 0 {
			t.Errorf("%s: bridge's own fdb entries %d, were %d", s.name, k.bridgeOwn, own)
		}
	}
}

// TestSetPeersResync: entries deleted behind the plane's back (a bridge
// entry, a VXLAN entry, a flood entry) come back at the next SetPeers with
// the same list, and a stray bridge entry on vxlan0 is removed.
func TestSetPeersResync(t *testing.T) {
	const vni = 4302
	h := setupNetwork(t, vni)
	peers := []Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2"), peer("198.19.1.3", "02:42:c6:13:00:03", "198.18.0.3")}
	if err := h.plane.SetPeers(vni, peers); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	want := kernelPeers(t, h, vni)
	nh := h.nsHandle(t, vni)
	idx := mustLinkIn(t, nh, vxlanName).Attrs().Index
	mac := [6]byte(peers[0].MAC)
	for _, n := range []*netlink.Neigh{
		masterEntry(idx, mac),
		fdbEntry(idx, fdbKey{mac: mac, vtep: netip.MustParseAddr("198.18.0.2")}),
		floodEntry(idx, netip.MustParseAddr("198.18.0.3")),
	} {
		if err := nh.NeighDel(n); err != nil {
			t.Fatalf("delete %+v: %v", n, err)
		}
	}
	stray := masterEntry(idx, [6]byte{0x02, 0x42, 0xc6, 0x13, 0x00, 0x99})
	if err := nh.NeighSet(stray); err != nil {
		t.Fatalf("add stray bridge entry: %v", err)
	}
	if k := kernelPeers(t, h, vni); slices.Equal(k.master, want.master) || slices.Equal(k.flood, want.flood) {
		t.Fatalf("drift did not change the kernel: %+v", k)
	}
	if err := h.plane.SetPeers(vni, peers); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	got := kernelPeers(t, h, vni)
	for _, c := range []struct {
		what      string
		have, was []string
	}{{"neighbours", got.neigh, want.neigh}, {"fdb", got.fdb, want.fdb},
		{"flood entries", got.flood, want.flood}, {"bridge entries", got.master, want.master}} {
		if !slices.Equal(c.have, c.was) {
			t.Errorf("after resync: %s %q, want %q", c.what, c.have, c.was)
		}
	}
}
