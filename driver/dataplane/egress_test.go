package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vxnet/vxnet/internal/testenv"
)

func TestPickPair(t *testing.T) {
	n := egressSlots()
	if n != 8192 {
		t.Fatalf("slots in %s: %d, want 8192", EgressRange, n)
	}
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	for _, tc := range []struct {
		vni        uint32
		used       []netip.Prefix
		host, nsid string
	}{
		{vni: 0x100000, host: "169.254.64.0", nsid: "169.254.64.1"}, // 0x100000 mod 8192 = 0
		{vni: 0x100001, host: "169.254.64.2", nsid: "169.254.64.3"},
		{vni: 0x100000 + 8191, host: "169.254.127.254", nsid: "169.254.127.255"},
		// Another network's pair (or anything else) on the slot: the next one.
		{vni: 0x100000, used: []netip.Prefix{p("169.254.64.0/31")}, host: "169.254.64.2", nsid: "169.254.64.3"},
		{vni: 0x100000, used: []netip.Prefix{p("169.254.64.1/32"), p("10.0.0.0/8")}, host: "169.254.64.2", nsid: "169.254.64.3"},
		// The last slot wraps around to the first.
		{vni: 0x100000 + 8191, used: []netip.Prefix{p("169.254.127.254/31")}, host: "169.254.64.0", nsid: "169.254.64.1"},
	} {
		got, err := pickPair(tc.vni, tc.used)
		if err != nil || got.host.String() != tc.host || got.ns.String() != tc.nsid {
			t.Errorf("pickPair(%d, %v) = %v, %v; want %s/%s", tc.vni, tc.used, got, err, tc.host, tc.nsid)
		}
	}
	if _, err := pickPair(1, []netip.Prefix{p("169.254.0.0/16")}); err == nil {
		t.Error("pickPair with the whole range used: no error")
	}
}

// TestEgress builds two hosts on an underlay; A runs a network with its own
// egress and FORWARD policy DROP (as dockerd leaves it), B stands for the
// outside. A container on A reaches B, masqueraded to A's underlay address;
// its gateway is A's br0 (also when B has the same gateway on its br0 and
// the two are peers); after DeleteNetwork nothing of it is left in A.
func TestEgress(t *testing.T) {
	const vni = 4501
	if _, err := exec.LookPath("iptables"); err != nil {
		testenv.Missing(t, "egress tests need iptables")
	}
	ping, hA, hB := twoHosts(t)
	a := side{host: hA, vtep: "198.18.0.1", ip4: "198.19.1.2/24", ip6: "2001:db8:19:1::2/64", ep: testEndpoint(vni, 1), egress: true}
	b := side{host: hB, vtep: "198.18.0.2", ip4: "198.19.1.3/24", ip6: "2001:db8:19:1::3/64", ep: testEndpoint(vni, 2), egress: true}
	forwardDrop(t, hA)
	for _, s := range []*side{&a, &b} {
		s.container = newNS(t)
		s.setUp(t, vni)
		ch := handleIn(t, s.container)
		gw := &netlink.Route{Gw: net.ParseIP("198.19.1.1"), LinkIndex: mustLinkIn(t, ch, "eth0").Attrs().Index}
		if err := ch.RouteAdd(gw); err != nil {
			t.Fatalf("default route in container: %v", err)
		}
	}
	hA.keep["vxe-4501"], hB.keep["vxe-4501"] = true, true // until DeleteNetwork
	runIn(t, hA.ns, func() { setPeers(t, hA, vni, b) })
	runIn(t, hB.ns, func() { setPeers(t, hB, vni, a) })

	// Idempotent: a second EnsureNetwork keeps the pair.
	runIn(t, hA.ns, func() {
		mark(t, handleIn(t, hA.ns), "vxe-4501")
		c := testNetwork(vni)
		c.LocalIP, c.Egress = net.ParseIP(a.vtep), true
		if err := hA.plane.EnsureNetwork(c); err != nil {
			t.Fatalf("EnsureNetwork again: %v", err)
		}
		if !marked(t, handleIn(t, hA.ns), "vxe-4501") {
			t.Error("second EnsureNetwork recreated the egress pair")
		}
	})

	// Outside: B's underlay address, which has no route to 198.19.1.0/24
	// or the link range: only a masqueraded packet gets an answer.
	outside := netip.MustParseAddr("198.18.0.2")
	pingFrom(t, a.container, ping, outside)
	var ln net.Listener
	runIn(t, hB.ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", "198.18.0.2:18080"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	runIn(t, a.container, func() {
		c, err := net.DialTimeout("tcp4", "198.18.0.2:18080", 3*time.Second)
		if err != nil {
			t.Fatalf("dial outside from container: %v", err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		var buf [64]byte
		n, _ := c.Read(buf[:])
		if got := string(buf[:n]); !strings.HasPrefix(got, "198.18.0.1:") {
			t.Errorf("outside saw the connection from %q, want A's underlay address 198.18.0.1", got)
		}
	})
	// The overlay still works, and each container's gateway is its own
	// host's br0 although both bridges hold 198.19.1.1.
	pingFrom(t, a.container, ping, netip.MustParsePrefix(b.ip4).Addr())
	pingFrom(t, b.container, ping, netip.MustParseAddr(a.vtep)) // B's own egress
	for _, s := range []*side{&a, &b} {
		brMAC := mustLinkIn(t, s.host.nsHandle(t, vni), bridgeName).Attrs().HardwareAddr
		if mac := neighMAC(t, s.container, "198.19.1.1"); !bytes.Equal(mac, brMAC) {
			t.Errorf("container on %s: gateway 198.19.1.1 at %v, want its host's br0 %v", s.vtep, mac, brMAC)
		}
	}

	for _, s := range []*side{&a, &b} {
		runIn(t, s.host.ns, func() {
			if err := s.host.plane.DeleteNetwork(vni); err != nil {
				t.Errorf("DeleteNetwork: %v", err)
			}
			delete(s.host.keep, "vxe-4501")
			s.host.assertClean(t)
			assertNoEgressRules(t)
		})
	}
}

// TestStaleEgressRulesRemoved: rules of a network whose namespace vanished
// (a crash between the two) go at the next Networks.
func TestStaleEgressRulesRemoved(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		testenv.Missing(t, "egress tests need iptables")
	}
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	c := testNetwork(4502)
	c.Egress = true
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	if out := iptablesSave(t); !strings.Contains(out, "vxe-4502") {
		t.Fatalf("no egress rules after EnsureNetwork:\n%s", out)
	}
	// Something still holds the namespace when its file goes (or the
	// kernel has not torn it down yet): the host side of the pair stays
	// until the plugin deletes it.
	held, err := netns.GetFromPath(h.plane.nsPath(4502))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := removeNetnsFile(h.plane.log, h.plane.nsPath(4502)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.plane.Networks(); err != nil {
		t.Fatalf("Networks: %v", err)
	}
	assertNoEgressRules(t)
	if _, err := netlink.LinkByName(egressHostLink(4502)); err == nil {
		t.Errorf("link %s left after its namespace went", egressHostLink(4502))
	}
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	var all []byte
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v: %s", err, out)
		}
		all = append(all, out...)
	}
	return string(all)
}

// assertNoEgressRules checks the current namespace for vxnet's chains and
// link routes.
func assertNoEgressRules(t *testing.T) {
	t.Helper()
	if out := iptablesSave(t); strings.Contains(out, egressChain) || strings.Contains(out, egressHostPrefix) {
		t.Errorf("egress rules left:\n%s", out)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && EgressRange.Contains(netip.AddrFrom4([4]byte(r.Dst.IP.To4()))) {
			t.Errorf("route %v left", r)
		}
	}
}

// neighMAC is the container's neighbour entry for ip.
func neighMAC(t *testing.T, ns netns.NsHandle, ip string) net.HardwareAddr {
	t.Helper()
	neighs, err := handleIn(t, ns).NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(net.ParseIP(ip)) {
			return n.HardwareAddr
		}
	}
	t.Errorf("no neighbour entry for %s", ip)
	return nil
}

// forwardDrop sets h's FORWARD policy to DROP, as dockerd leaves it.
func forwardDrop(t *testing.T, h *testHost) {
	t.Helper()
	runIn(t, h.ns, func() {
		if out, err := exec.Command("iptables", "-P", "FORWARD", "DROP").CombinedOutput(); err != nil {
			t.Fatalf("iptables -P FORWARD DROP: %v: %s", err, out)
		}
	})
}
