package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func testNetwork(vni uint32) NetworkConfig {
	return NetworkConfig{
		VNI:     vni,
		Port:    4789,
		LocalIP: net.ParseIP("198.18.0.1"),
		MTU:     1450,
		Addresses: []netip.Prefix{
			netip.MustParsePrefix("198.19.1.1/24"),
			netip.MustParsePrefix("2001:db8:19:1::1/64"),
		},
	}
}

// bridgeAddrs returns br0's addresses except IPv6 link-local ones.
func bridgeAddrs(t *testing.T, nh *netlink.Handle) []netip.Prefix {
	t.Helper()
	addrs, err := nh.AddrList(mustLinkIn(t, nh, bridgeName), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list br0 addresses: %v", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := addrPrefix(a); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// checkNetwork verifies the network's kernel objects against c.
func checkNetwork(t *testing.T, h *testHost, c NetworkConfig) (br, vx netlink.Link) {
	t.Helper()
	nh := h.nsHandle(t, c.VNI)
	br = mustLinkIn(t, nh, bridgeName)
	if br.Type() != "bridge" || br.Attrs().MTU != c.MTU || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("br0: type %s mtu %d flags %v", br.Type(), br.Attrs().MTU, br.Attrs().Flags)
	}
	if got, want := bridgeAddrs(t, nh), sortedPrefixes(c.Addresses); !slices.Equal(got, want) {
		t.Errorf("br0 addresses %v, want %v", got, want)
	}
	vx = mustLinkIn(t, nh, vxlanName)
	v, ok := vx.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("vxlan0 is a %s", vx.Type())
	}
	if v.VxlanId != int(c.VNI) || v.Port != c.Port || v.Learning || !v.Proxy || !sameIP(v.SrcAddr, c.LocalIP) {
		t.Errorf("vxlan0: vni %d port %d learning %v proxy %v local %v; want %+v",
			v.VxlanId, v.Port, v.Learning, v.Proxy, v.SrcAddr, c)
	}
	if v.MTU != c.MTU || v.MasterIndex != br.Attrs().Index || v.Flags&net.FlagUp == 0 {
		t.Errorf("vxlan0: mtu %d master %d (br0 %d) flags %v", v.MTU, v.MasterIndex, br.Attrs().Index, v.Flags)
	}
	if pi, err := nh.LinkGetProtinfo(vx); err != nil || pi.Learning {
		t.Errorf("vxlan0 bridge port: learning %v (%v), want off", pi.Learning, err)
	}
	lo := mustLinkIn(t, nh, "lo")
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is down in the network namespace")
	}
	return br, vx
}

// udpPortBound reports whether a UDP socket on port exists in the current
// thread's namespace.
func udpPortBound(t *testing.T, port int) bool {
	t.Helper()
	for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.Contains(string(data), fmt.Sprintf(":%04X ", port)) {
			return true
		}
	}
	return false
}

func TestEnsureNetworkCreates(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4101)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	checkNetwork(t, h, c)
	if vnis, err := h.plane.Networks(); err != nil || !slices.Equal(vnis, []uint32{4101}) {
		t.Errorf("Networks = %v, %v", vnis, err)
	}
	if live, err := isNetnsMount(h.plane.nsPath(4101)); err != nil || !live {
		t.Errorf("netns file not a live mount: %v %v", live, err)
	}
	// The VXLAN socket lives in the host namespace, not the network's.
	if !udpPortBound(t, c.Port) {
		t.Errorf("no UDP socket on port %d in the host netns", c.Port)
	}
	if names := linkNames(t, handleIn(t, h.ns)); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("host links %v, want only lo", names)
	}
}

func TestEnsureNetworkIdempotent(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4102)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	checkNetwork(t, h, c)
	nh := h.nsHandle(t, c.VNI)
	mark(t, nh, bridgeName)
	mark(t, nh, vxlanName)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("second EnsureNetwork: %v", err)
	}
	checkNetwork(t, h, c)
	if !marked(t, nh, bridgeName) || !marked(t, nh, vxlanName) {
		t.Error("links were recreated by an identical EnsureNetwork")
	}
}

func TestEnsureNetworkConverges(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4103)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	checkNetwork(t, h, c)
	nh := h.nsHandle(t, c.VNI)
	mark(t, nh, vxlanName)

	// Addresses and MTU change in place.
	c.Addresses = []netip.Prefix{
		netip.MustParsePrefix("2001:db8:19:1::1/64"),
		netip.MustParsePrefix("198.19.2.1/24"),
	}
	c.MTU = 1400
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork (addresses): %v", err)
	}
	_, vx2 := checkNetwork(t, h, c)
	if !marked(t, nh, vxlanName) {
		t.Error("vxlan0 recreated for an address/MTU change")
	}

	// Drift: vxlan0 down and out of the bridge is repaired in place.
	if err := nh.LinkSetNoMaster(vx2); err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetDown(vx2); err != nil {
		t.Fatal(err)
	}
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork (drift): %v", err)
	}
	checkNetwork(t, h, c)
	if !marked(t, nh, vxlanName) {
		t.Error("vxlan0 recreated to repair drift")
	}

	// Drift: learning turned back on at the bridge port is turned off.
	if err := nh.LinkSetLearning(mustLinkIn(t, nh, vxlanName), true); err != nil {
		t.Fatal(err)
	}
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork (learning drift): %v", err)
	}
	checkNetwork(t, h, c)
}

func TestEnsureNetworkRecreatesVxlan(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4104)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	checkNetwork(t, h, c)
	nh := h.nsHandle(t, c.VNI)
	mark(t, nh, bridgeName)
	for _, change := range []func(*NetworkConfig){
		func(c *NetworkConfig) { c.Port = 4790 },
		func(c *NetworkConfig) { c.LocalIP = net.ParseIP("198.18.0.9") },
		func(c *NetworkConfig) { c.LocalIP = nil },
	} {
		mark(t, nh, vxlanName)
		change(&c)
		if err := h.plane.EnsureNetwork(c); err != nil {
			t.Fatalf("EnsureNetwork(%+v): %v", c, err)
		}
		checkNetwork(t, h, c)
		if marked(t, nh, vxlanName) {
			t.Errorf("vxlan0 not recreated for %+v", c)
		}
		if !marked(t, nh, bridgeName) {
			t.Errorf("br0 recreated for %+v", c)
		}
	}
	if udpPortBound(t, 4789) || !udpPortBound(t, 4790) {
		t.Error("UDP sockets did not follow the port change")
	}
}

func TestEnsureNetworkRollsBack(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4105)
	// A foreign device holding the VNI and port makes the vxlan create fail
	// after the namespace and bridge were made.
	blocker := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "blocker"}, VxlanId: int(c.VNI), Port: c.Port}
	if err := netlink.LinkAdd(blocker); err != nil {
		t.Fatalf("add blocker: %v", err)
	}
	h.keep["blocker"] = true
	err := h.plane.EnsureNetwork(c)
	if err == nil || !strings.Contains(err.Error(), tempVxlanName(c.VNI)) {
		t.Fatalf("EnsureNetwork = %v, want an error naming %q", err, tempVxlanName(c.VNI))
	}
	if vnis, err := h.plane.Networks(); err != nil || len(vnis) != 0 {
		t.Errorf("Networks after rollback = %v, %v", vnis, err)
	}
	h.assertClean(t)
	if err := netlink.LinkDel(blocker); err != nil {
		t.Fatal(err)
	}
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork after removing the blocker: %v", err)
	}
	checkNetwork(t, h, c)
}

func TestDeleteNetwork(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4106)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	if _, err := h.plane.EnsureEndpoint(testEndpoint(c.VNI, 1)); err != nil {
		t.Fatalf("EnsureEndpoint: %v", err)
	}
	for i := range 2 {
		if err := h.plane.DeleteNetwork(c.VNI); err != nil {
			t.Fatalf("DeleteNetwork #%d: %v", i+1, err)
		}
		h.assertClean(t)
	}
	if err := h.plane.DeleteNetwork(4999); err != nil {
		t.Errorf("DeleteNetwork of an unknown network: %v", err)
	}
	if _, err := os.Stat(h.plane.nsPath(c.VNI)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns file still there: %v", err)
	}
	// The VNI is free again at once: recreate works.
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork after delete: %v", err)
	}
	checkNetwork(t, h, c)
}

// TestEnsureNetworkVNIHeld: a VXLAN device of someone else (Docker's swarm
// ingress, say) holding the VNI and port in the host namespace makes
// EnsureNetwork fail with ErrVNIInUse and a message naming the cause, and
// leaves no namespace and no VXLAN filter behind; the same VNI on another port works.
func TestEnsureNetworkVNIHeld(t *testing.T) {
	const vni = 4096
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	other := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "ingress-test"}, VxlanId: vni, Port: 4789}
	if err := netlink.LinkAdd(other); err != nil {
		t.Fatalf("create the other vxlan device: %v", err)
	}
	defer func() {
		if err := netlink.LinkDel(other); err != nil {
			t.Errorf("delete the other vxlan device: %v", err)
		}
	}()
	err := h.plane.EnsureNetwork(testNetwork(vni))
	if !errors.Is(err, ErrVNIInUse) || !strings.Contains(err.Error(), "VNI 4096 on UDP port 4789 is held by another VXLAN device") {
		t.Fatalf("EnsureNetwork on a held VNI: %v", err)
	}
	if nets, err := h.plane.Networks(); err != nil || len(nets) != 0 {
		t.Errorf("networks after the refused create: %v (%v)", nets, err)
	}
	if tags, _, ok := filterState(t); ok {
		t.Errorf("VXLAN filter left after the refused create (rules %q): it would drop the other device's traffic", tags)
	}
	c := testNetwork(vni)
	c.Port = 4790
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("same VNI on another port: %v", err)
	}
	if err := h.plane.DeleteNetwork(vni); err != nil {
		t.Fatal(err)
	}
}
