package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestKnownUnicastAndFlood: on host A a sender and an idle bystander, on
// host B a receiver. The sender's pings to host B do not reach the
// bystander (br0 sends known remote unicast to vxlan0 alone), and a
// broadcast sent on host B reaches both containers on host A (head-end
// replication to every member VTEP).
func TestKnownUnicastAndFlood(t *testing.T) {
	const vni = 4601
	ping, hA, hB := twoHosts(t)
	a := side{host: hA, vtep: "198.18.0.1", ip4: "198.19.1.2/24", ip6: "2001:db8:19:1::2/64", ep: testEndpoint(vni, 1)}
	by := side{host: hA, vtep: "198.18.0.1", ip4: "198.19.1.4/24", ip6: "2001:db8:19:1::4/64", ep: testEndpoint(vni, 3)}
	b := side{host: hB, vtep: "198.18.0.2", ip4: "198.19.1.3/24", ip6: "2001:db8:19:1::3/64", ep: testEndpoint(vni, 2)}
	for _, s := range []*side{&a, &by, &b} {
		s.container = newNS(t)
		s.setUp(t, vni)
	}
	runIn(t, hA.ns, func() { setPeers(t, hA, vni, b) })
	runIn(t, hB.ns, func() {
		var peers []Peer
		for _, s := range []side{a, by} {
			peers = append(peers, Peer{IP: netip.MustParsePrefix(s.ip4).Addr(), MAC: s.ep.MAC, VTEP: net.ParseIP(s.vtep)})
		}
		if err := hB.plane.SetPeers(vni, peers); err != nil {
			t.Fatalf("SetPeers: %v", err)
		}
	})
	dstB := netip.MustParsePrefix(b.ip4).Addr()
	pingFrom(t, a.container, ping, dstB)

	before := rxPackets(t, by.container)
	out, err := nsExec(a.container, append(ping, "-A", "-c", "200", "-W", "1", dstB.String())...)
	if err != nil {
		t.Fatalf("ping stream: %v\n%s", err, out)
	}
	if seen := rxPackets(t, by.container) - before; seen > 5 {
		t.Errorf("bystander received %d frames of 200 pings between two other containers", seen)
	}

	beforeA, beforeBy := rxPackets(t, a.container), rxPackets(t, by.container)
	runIn(t, b.container, func() { sendBroadcast(t, "198.19.1.255:9", 3) })
	for name, got := range map[string]uint64{"sender": rxPackets(t, a.container) - beforeA, "bystander": rxPackets(t, by.container) - beforeBy} {
		if got < 3 {
			t.Errorf("%s on host A received %d frames of 3 broadcasts from host B", name, got)
		}
	}
	for _, s := range []*side{&a, &by, &b} {
		runIn(t, s.host.ns, func() {
			if err := s.host.plane.DeleteEndpoint(vni, s.ep.ID); err != nil {
				t.Errorf("DeleteEndpoint: %v", err)
			}
		})
	}
	for _, h := range []*testHost{hA, hB} {
		runIn(t, h.ns, func() {
			if err := h.plane.DeleteNetwork(vni); err != nil {
				t.Errorf("DeleteNetwork: %v", err)
			}
		})
	}
}

// rxPackets reads eth0's receive counter in a container namespace.
func rxPackets(t *testing.T, ns netns.NsHandle) uint64 {
	t.Helper()
	st := mustLinkIn(t, handleIn(t, ns), "eth0").Attrs().Statistics
	if st == nil {
		t.Fatal("eth0 has no statistics")
	}
	return st.RxPackets
}

// nsExec runs a command inside ns with nsenter.
func nsExec(ns netns.NsHandle, args ...string) ([]byte, error) {
	nsFile := fmt.Sprintf("/proc/%d/fd/%d", unix.Getpid(), int(ns))
	return exec.Command("nsenter", append([]string{"--net=" + nsFile}, args...)...).CombinedOutput()
}

// sendBroadcast sends n UDP datagrams to a broadcast address from the
// calling thread's namespace (Go sockets allow broadcast).
func sendBroadcast(t *testing.T, dst string, n int) {
	t.Helper()
	c, err := net.Dial("udp4", dst)
	if err != nil {
		t.Fatalf("udp socket to %s: %v", dst, err)
	}
	defer c.Close()
	for range n {
		if _, err := c.Write([]byte("vxnet flood test")); err != nil {
			t.Fatalf("send broadcast to %s: %v", dst, err)
		}
	}
}
