package dataplane

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// filterState reads the VXLAN filter of the calling thread's namespace:
// the input rules' tags, and per network chain the v4 set's addresses.
// ok is false when there is no table.
func filterState(t *testing.T) (tags []string, sets map[string][]string, ok bool) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nft tables: %v", err)
	}
	var table *nftables.Table
	for _, tb := range tables {
		if tb.Name == filterTable {
			table = tb
		}
	}
	if table == nil {
		return nil, nil, false
	}
	rules, err := c.GetRules(table, &nftables.Chain{Name: filterInput, Table: table})
	if err != nil {
		t.Fatalf("list input rules: %v", err)
	}
	for _, r := range rules {
		tags = append(tags, string(r.UserData))
	}
	slices.Sort(tags)
	all, err := c.GetSets(table)
	if err != nil {
		t.Fatalf("list sets: %v", err)
	}
	sets = map[string][]string{}
	for _, s := range all {
		elems, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("list set %s: %v", s.Name, err)
		}
		addrs := []string{}
		for _, e := range elems {
			a, _ := netip.AddrFromSlice(e.Key)
			addrs = append(addrs, a.String())
		}
		slices.Sort(addrs)
		sets[s.Name] = addrs
	}
	return tags, sets, true
}

// TestFilterLifecycle: each network gets its rule and sets, SetPeers makes
// the sets hold exactly the peers' VTEPs (an IPv4 underlay here), a rule for another
// port is replaced, and the table goes with the last network.
func TestFilterLifecycle(t *testing.T) {
	h := setupNetwork(t, 4501)
	if err := h.plane.EnsureNetwork(testNetwork(4502)); err != nil {
		t.Fatal(err)
	}
	tags, sets, ok := filterState(t)
	if want := []string{"vni=4501 port=4789", "vni=4502 port=4789"}; !ok || !slices.Equal(tags, want) {
		t.Fatalf("input rules %q (table %v), want %q", tags, ok, want)
	}
	peers := []Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2"), peer("198.19.1.3", "02:42:c6:13:00:03", "198.18.0.3"),
		peer("198.19.1.4", "02:42:c6:13:00:04", "198.18.0.3")}
	for _, step := range []struct {
		peers  []Peer
		v4, v6 []string
	}{
		{peers, []string{"198.18.0.2", "198.18.0.3"}, []string{}},
		{peers[1:3], []string{"198.18.0.3"}, []string{}},
		{nil, []string{}, []string{}},
	} {
		if err := h.plane.SetPeers(4501, step.peers); err != nil {
			t.Fatalf("SetPeers: %v", err)
		}
		_, sets, _ = filterState(t)
		if !slices.Equal(sets["v4-4501"], step.v4) || !slices.Equal(sets["v6-4501"], step.v6) || len(sets["v4-4502"]) != 0 {
			t.Errorf("after SetPeers with %d peers: sets %v, want v4-4501 %q, v6-4501 %q", len(step.peers), sets, step.v4, step.v6)
		}
	}
	c := testNetwork(4502)
	c.Port = 4790
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatal(err)
	}
	if tags, _, _ = filterState(t); !slices.Equal(tags, []string{"vni=4501 port=4789", "vni=4502 port=4790"}) {
		t.Errorf("after a port change: input rules %q", tags)
	}
	if err := h.plane.DeleteNetwork(4502); err != nil {
		t.Fatal(err)
	}
	tags, sets, ok = filterState(t)
	if !ok || !slices.Equal(tags, []string{"vni=4501 port=4789"}) || sets["v4-4502"] != nil {
		t.Errorf("after deleting one network: input rules %q, sets %v", tags, sets)
	}
	if err := h.plane.DeleteNetwork(4501); err != nil {
		t.Fatal(err)
	}
	if tags, _, ok = filterState(t); ok {
		t.Errorf("table inet %s left after the last network (rules %s)", filterTable, strings.Join(tags, ", "))
	}
	if err := h.plane.DeleteNetwork(4501); err != nil {
		t.Errorf("DeleteNetwork again: %v", err)
	}
}

// TestStaleFilterRemoved: a filter whose namespace is gone (a crash
// between the two removals) goes at the next Networks.
func TestStaleFilterRemoved(t *testing.T) {
	h := setupNetwork(t, 4503)
	if err := h.plane.EnsureNetwork(testNetwork(4504)); err != nil {
		t.Fatal(err)
	}
	// What DeleteNetwork does before removing the filter.
	if err := inNetns(h.plane.log, h.plane.nsPath(4504), func() error { return deleteAllLinks(h.plane.log) }); err != nil {
		t.Fatal(err)
	}
	if err := removeNetnsFile(h.plane.log, h.plane.nsPath(4504)); err != nil {
		t.Fatal(err)
	}
	nets, err := h.plane.Networks()
	if err != nil || !slices.Equal(nets, []uint32{4503}) {
		t.Fatalf("Networks: %v %v", nets, err)
	}
	if tags, _, ok := filterState(t); !ok || !slices.Equal(tags, []string{"vni=4503 port=4789"}) {
		t.Errorf("filter rules after Networks: %q (table %v), want only vni 4503's", tags, ok)
	}
}
