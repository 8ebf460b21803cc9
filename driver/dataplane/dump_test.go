package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// TestDump reads back what EnsureNetwork, EnsureEndpoint and SetPeers
// wrote, IPv4 and IPv6 alike, and sees an entry deleted behind the plane's
// back go missing.
func TestDump(t *testing.T) {
	const vni = 4401
	h := setupNetwork(t, vni)
	c := testEndpoint(vni, 1)
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("EnsureEndpoint: %v", err)
	}
	p1 := peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2")
	p2 := peer("2001:db8:19:1::3", "02:42:c6:13:00:03", "198.18.0.3")
	if err := h.plane.SetPeers(vni, []Peer{p1, p2}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	summary := func() string {
		t.Helper()
		st, err := Dump(h.dir)
		if err != nil || len(st) != 1 {
			t.Fatalf("Dump: %+v, %v", st, err)
		}
		s := st[0]
		var fdb []string
		for _, f := range s.FDB {
			fdb = append(fdb, f.MAC.String()+">"+f.VTEP.String())
		}
		slices.Sort(fdb)
		slices.SortFunc(s.Flood, netip.Addr.Compare)
		return fmt.Sprintf("vni=%d br=%v vx=%v ports=%v neigh=%v fdb=%v flood=%v master=%d",
			s.VNI, s.Bridge, s.VXLAN, s.Ports, s.Neigh, fdb, s.Flood, len(s.Master))
	}
	want := fmt.Sprintf("vni=%d br=true vx=true ports=[%s] neigh=map[198.19.1.2:02:42:c6:13:00:02 2001:db8:19:1::3:02:42:c6:13:00:03] "+
		"fdb=[02:42:c6:13:00:02>198.18.0.2 02:42:c6:13:00:03>198.18.0.3] flood=[198.18.0.2 198.18.0.3] master=2", vni, c.ID[:12])
	if got := summary(); got != want {
		t.Errorf("Dump:\n got %s\nwant %s", got, want)
	}
	if err := inNetns(h.plane.log, h.plane.nsPath(vni), func() error {
		vx, err := mustLink(h.plane.log, vxlanName)
		if err != nil {
			return err
		}
		k := fdbKey{vtep: netip.MustParseAddr("198.18.0.2")}
		copy(k.mac[:], p1.MAC)
		return neighOp(h.plane.log, "delete", fdbEntry(vx.Attrs().Index, k))
	}); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("vni=%d br=true vx=true ports=[%s] neigh=map[198.19.1.2:02:42:c6:13:00:02 2001:db8:19:1::3:02:42:c6:13:00:03] "+
		"fdb=[02:42:c6:13:00:03>198.18.0.3] flood=[198.18.0.2 198.18.0.3] master=2", vni, c.ID[:12])
	if got := summary(); got != want {
		t.Errorf("Dump after deleting an fdb entry:\n got %s\nwant %s", got, want)
	}
	if err := h.plane.DeleteEndpoint(vni, c.ID); err != nil {
		t.Fatal(err)
	}
}
