package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxnet/vxnet/internal/testenv"
)

// TestEndToEndPing builds two hosts joined by an underlay veth, one network
// on both, one endpoint per host moved into its own container namespace,
// peers on both sides, and pings across the overlay over IPv4 and IPv6.
func TestEndToEndPing(t *testing.T) {
	const vni = 4401
	ping, hA, hB := twoHosts(t)

	a := side{host: hA, vtep: "198.18.0.1", ip4: "198.19.1.2/24", ip6: "2001:db8:19:1::2/64", ep: testEndpoint(vni, 1)}
	b := side{host: hB, vtep: "198.18.0.2", ip4: "198.19.1.3/24", ip6: "2001:db8:19:1::3/64", ep: testEndpoint(vni, 2)}
	for _, s := range []*side{&a, &b} {
		s.container = newNS(t)
		s.setUp(t, vni)
	}
	// Learning is off: without peers nothing crosses.
	if out, err := pingOnce(a.container, ping, netip.MustParsePrefix(b.ip4).Addr(), "1"); err == nil {
		t.Fatalf("ping crossed the overlay before SetPeers:\n%s", out)
	}
	runIn(t, hA.ns, func() { setPeers(t, hA, vni, b) })
	runIn(t, hB.ns, func() { setPeers(t, hB, vni, a) })

	for _, dst := range []string{b.ip4, b.ip6} {
		pingFrom(t, a.container, ping, netip.MustParsePrefix(dst).Addr())
	}
	pingFrom(t, b.container, ping, netip.MustParsePrefix(a.ip4).Addr())
	// The traffic went through vxlan0 and out of the underlay.
	for name, nh := range map[string]*netlink.Handle{vxlanName: hA.nsHandle(t, vni), "u0": handleIn(t, hA.ns)} {
		if st := mustLinkIn(t, nh, name).Attrs().Statistics; st == nil || st.TxPackets == 0 || st.RxPackets == 0 {
			t.Errorf("%s on hostA carried no traffic: %+v", name, st)
		}
	}

	for _, s := range []*side{&a, &b} {
		runIn(t, s.host.ns, func() {
			if err := s.host.plane.DeleteEndpoint(vni, s.ep.ID); err != nil {
				t.Errorf("DeleteEndpoint: %v", err)
			}
			if err := s.host.plane.DeleteNetwork(vni); err != nil {
				t.Errorf("DeleteNetwork: %v", err)
			}
			s.host.assertClean(t)
		})
		if names := linkNames(t, handleIn(t, s.container)); !slices.Equal(names, []string{"lo"}) {
			t.Errorf("container links after delete: %v", names)
		}
	}
}

// twoHosts returns the ping command and two test hosts joined by an
// underlay veth.
func twoHosts(t *testing.T) (ping []string, hA, hB *testHost) {
	t.Helper()
	requireRoot(t)
	ping = pingCommand(t)
	hA, hB = newTestHost(t, "hostA"), newTestHost(t, "hostB")
	connectUnderlay(t, hA, hB)
	return ping, hA, hB
}

// side is one host of the end-to-end test with its container.
type side struct {
	host      *testHost
	vtep      string // underlay address
	ip4, ip6  string // overlay addresses of the container
	ep        EndpointConfig
	container netns.NsHandle
	egress    bool // the network has its own egress
}

// setUp creates the network and the endpoint on the host, then does what
// Docker does: move the container side into the container, rename it eth0,
// address it and bring it up.
func (s *side) setUp(t *testing.T, vni uint32) {
	t.Helper()
	var name string
	runIn(t, s.host.ns, func() {
		c := testNetwork(vni)
		c.LocalIP, c.Egress = net.ParseIP(s.vtep), s.egress
		if err := s.host.plane.EnsureNetwork(c); err != nil {
			t.Fatalf("EnsureNetwork: %v", err)
		}
		var err error
		if name, err = s.host.plane.EnsureEndpoint(s.ep); err != nil {
			t.Fatalf("EnsureEndpoint: %v", err)
		}
	})
	hh := handleIn(t, s.host.ns)
	if err := hh.LinkSetNsFd(mustLinkIn(t, hh, name), int(s.container)); err != nil {
		t.Fatalf("move %q to container: %v", name, err)
	}
	ch := handleIn(t, s.container)
	l := mustLinkIn(t, ch, name)
	if err := ch.LinkSetName(l, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{s.ip4, s.ip6} {
		if err := ch.AddrAdd(l, nlAddr(netip.MustParsePrefix(a))); err != nil {
			t.Fatalf("add %s: %v", a, err)
		}
	}
	for _, n := range []string{"lo", "eth0"} {
		if err := ch.LinkSetUp(mustLinkIn(t, ch, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// setPeers tells h about the other side's container.
func setPeers(t *testing.T, h *testHost, vni uint32, other side) {
	t.Helper()
	var peers []Peer
	for _, a := range []string{other.ip4, other.ip6} {
		peers = append(peers, Peer{
			IP:   netip.MustParsePrefix(a).Addr(),
			MAC:  other.ep.MAC,
			VTEP: net.ParseIP(other.vtep),
		})
	}
	if err := h.plane.SetPeers(vni, peers); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
}

// connectUnderlay joins two hosts with a veth pair "u0" on 198.18.0.0/24.
func connectUnderlay(t *testing.T, hA, hB *testHost) {
	t.Helper()
	ha, hb := handleIn(t, hA.ns), handleIn(t, hB.ns)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "u0"}, PeerName: "u0", PeerNamespace: netlink.NsFd(int(hB.ns))}
	if err := ha.LinkAdd(v); err != nil {
		t.Fatalf("create underlay veth: %v", err)
	}
	for i, nh := range []*netlink.Handle{ha, hb} {
		l := mustLinkIn(t, nh, "u0")
		if err := nh.AddrAdd(l, nlAddr(netip.MustParsePrefix(fmt.Sprintf("198.18.0.%d/24", i+1)))); err != nil {
			t.Fatal(err)
		}
		if err := nh.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	hA.keep["u0"], hB.keep["u0"] = true, true
}

// pingCommand returns ping, or busybox's.
func pingCommand(t *testing.T) []string {
	if p, err := exec.LookPath("ping"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return []string{p, "ping"}
	}
	testenv.Missing(t, "neither ping nor busybox found")
	return nil
}

// pingFrom pings dst from inside ns with nsenter, up to three tries.
func pingFrom(t *testing.T, ns netns.NsHandle, ping []string, dst netip.Addr) {
	t.Helper()
	var out []byte
	var err error
	for range 3 {
		if out, err = pingOnce(ns, ping, dst, "2"); err == nil {
			return
		}
	}
	t.Errorf("ping %s: %v\n%s", dst, err, out)
}

// pingOnce sends one echo request to dst from inside ns and waits wait
// seconds for the reply.
func pingOnce(ns netns.NsHandle, ping []string, dst netip.Addr, wait string) ([]byte, error) {
	nsFile := fmt.Sprintf("/proc/%d/fd/%d", unix.Getpid(), int(ns))
	args := append([]string{"--net=" + nsFile}, ping...)
	args = append(args, "-c1", "-W"+wait, dst.String())
	return exec.Command("nsenter", args...).CombinedOutput()
}
