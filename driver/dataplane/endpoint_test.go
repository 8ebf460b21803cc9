package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testEndpoint returns endpoint n of a network: a 64-hex-char ID whose first
// 12 characters differ per n, and a locally administered MAC.
func testEndpoint(vni uint32, n int) EndpointConfig {
	id := fmt.Sprintf("%012x", 0xe0000000000+n) + strings.Repeat("ab", 26)
	return EndpointConfig{
		VNI: vni,
		ID:  id,
		MAC: net.HardwareAddr{0x02, 0x42, 0xc6, 0x13, byte(vni), byte(n)},
		MTU: 1450,
	}
}

// checkEndpoint verifies both sides of an endpoint and returns their links.
func checkEndpoint(t *testing.T, h *testHost, c EndpointConfig) (host, port netlink.Link) {
	t.Helper()
	n := namesFor(c.ID)
	host = mustLinkIn(t, handleIn(t, h.ns), n.host)
	if host.Type() != "veth" || !bytes.Equal(host.Attrs().HardwareAddr, c.MAC) ||
		host.Attrs().MTU != c.MTU || host.Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("host side %q: type %s mac %s mtu %d flags %v", n.host, host.Type(),
			host.Attrs().HardwareAddr, host.Attrs().MTU, host.Attrs().Flags)
	}
	nh := h.nsHandle(t, c.VNI)
	port = mustLinkIn(t, nh, n.port)
	br := mustLinkIn(t, nh, bridgeName)
	if port.Type() != "veth" || port.Attrs().MasterIndex != br.Attrs().Index ||
		port.Attrs().MTU != c.MTU || port.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("port %q: type %s master %d (br0 %d) mtu %d flags %v", n.port, port.Type(),
			port.Attrs().MasterIndex, br.Attrs().Index, port.Attrs().MTU, port.Attrs().Flags)
	}
	if port.Attrs().ParentIndex != host.Attrs().Index || host.Attrs().ParentIndex != port.Attrs().Index {
		t.Errorf("%q and %q are not veth peers", n.host, n.port)
	}
	return host, port
}

func setupNetwork(t *testing.T, vni uint32) *testHost {
	t.Helper()
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	if err := h.plane.EnsureNetwork(testNetwork(vni)); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	return h
}

func TestEnsureEndpoint(t *testing.T) {
	h := setupNetwork(t, 4201)
	c := testEndpoint(4201, 1)
	name, err := h.plane.EnsureEndpoint(c)
	if err != nil {
		t.Fatalf("EnsureEndpoint: %v", err)
	}
	if name != "vxc"+c.ID[:12] {
		t.Errorf("name %q, want %q", name, "vxc"+c.ID[:12])
	}
	_, port1 := checkEndpoint(t, h, c)
	if ids, err := h.plane.Endpoints(4201); err != nil || !slices.Equal(ids, []string{c.ID[:12]}) {
		t.Errorf("Endpoints = %v, %v", ids, err)
	}
	// Idempotent: a good pair is left alone.
	hh, nh := handleIn(t, h.ns), h.nsHandle(t, 4201)
	mark(t, hh, name)
	mark(t, nh, port1.Attrs().Name)
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("second EnsureEndpoint: %v", err)
	}
	_, port2 := checkEndpoint(t, h, c)
	if !marked(t, hh, name) || !marked(t, nh, port2.Attrs().Name) {
		t.Error("good endpoint was recreated")
	}
	// A port that fell out of the bridge is re-attached in place.
	if err := nh.LinkSetNoMaster(port2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("EnsureEndpoint (detached port): %v", err)
	}
	checkEndpoint(t, h, c)
	if !marked(t, nh, port2.Attrs().Name) {
		t.Error("detached port was recreated instead of re-attached")
	}
}

func TestEnsureEndpointRepairs(t *testing.T) {
	h := setupNetwork(t, 4202)
	c := testEndpoint(4202, 2)
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("EnsureEndpoint: %v", err)
	}
	checkEndpoint(t, h, c)
	hh := handleIn(t, h.ns)
	mark(t, hh, namesFor(c.ID).host)

	// A different MAC asked for: the pair is recreated.
	c.MAC = net.HardwareAddr{0x02, 0x42, 0xc6, 0x13, 0x99, 0x99}
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("EnsureEndpoint (new mac): %v", err)
	}
	checkEndpoint(t, h, c)
	if marked(t, hh, namesFor(c.ID).host) {
		t.Error("pair with the wrong MAC was not recreated")
	}

	// Half-made: the bridge side never left the host (stray link of that
	// name), and the container side is gone.
	if err := h.plane.DeleteEndpoint(c.VNI, c.ID); err != nil {
		t.Fatal(err)
	}
	n := namesFor(c.ID)
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n.port}, PeerName: "stray0"}
	if err := netlink.LinkAdd(stray); err != nil {
		t.Fatal(err)
	}
	if _, err := h.plane.EnsureEndpoint(c); err != nil {
		t.Fatalf("EnsureEndpoint (half-made): %v", err)
	}
	checkEndpoint(t, h, c)
	if names := linkNames(t, handleIn(t, h.ns)); !slices.Equal(names, []string{"lo", n.host}) {
		t.Errorf("host links %v, want lo and %s", names, n.host)
	}
}

// nsEnters counts the switches into a namespace a Plane logs (inNetns).
type nsEnters struct {
	mu sync.Mutex
	n  int
}

func (c *nsEnters) Levels() []logrus.Level { return []logrus.Level{logrus.DebugLevel} }

func (c *nsEnters) Fire(e *logrus.Entry) error {
	if e.Message == msgEnterNetns {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return nil
}

// take returns the switches since the last take.
func (c *nsEnters) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// Join's veth is created, and verified, with one switch into the network
// namespace, not two (issue #13: each switch's wait grew with the host's
// load); so is a pair repaired from a stale port in the namespace. What
// the pair looks like is what checkEndpoint wants: MAC, MTU, down host
// side, up port on br0, peers of each other.
func TestEnsureEndpointEntersNetnsOnce(t *testing.T) {
	h := setupNetwork(t, 4206)
	enters := &nsEnters{}
	h.plane.log.Logger.AddHook(enters)
	c := testEndpoint(4206, 1)
	n := namesFor(c.ID)
	ensure := func(what string, want int) {
		t.Helper()
		enters.take()
		if _, err := h.plane.EnsureEndpoint(c); err != nil {
			t.Fatalf("EnsureEndpoint (%s): %v", what, err)
		}
		if got := enters.take(); got != want {
			t.Errorf("EnsureEndpoint (%s): %d switches into the network namespace, want %d", what, got, want)
		}
		host, port := checkEndpoint(t, h, c)
		if host.Attrs().TxQLen != port.Attrs().TxQLen {
			t.Errorf("%s: txqlen host side %d, port %d", what, host.Attrs().TxQLen, port.Attrs().TxQLen)
		}
	}
	ensure("new", 1)
	ensure("intact", 1)

	// A stale port left in the namespace (its peer there too), no container
	// side: one switch.
	if err := h.plane.DeleteEndpoint(c.VNI, c.ID); err != nil {
		t.Fatal(err)
	}
	nh := h.nsHandle(t, c.VNI)
	if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n.port}, PeerName: "stale0"}); err != nil {
		t.Fatal(err)
	}
	ensure("stale port", 1)

	// A container side that matches but whose peer is not the port: the
	// pair is made anew (a second round, the only one).
	if err := h.plane.DeleteEndpoint(c.VNI, c.ID); err != nil {
		t.Fatal(err)
	}
	hh := handleIn(t, h.ns)
	odd := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n.host, MTU: c.MTU, HardwareAddr: c.MAC}, PeerName: "odd0"}
	if err := hh.LinkAdd(odd); err != nil {
		t.Fatal(err)
	}
	ensure("foreign peer", 3)
	if names := linkNames(t, hh); !slices.Equal(names, []string{"lo", n.host}) {
		t.Errorf("host links %v, want lo and %s", names, n.host)
	}
}

func TestDeleteEndpoint(t *testing.T) {
	h := setupNetwork(t, 4203)
	c1, c2 := testEndpoint(4203, 1), testEndpoint(4203, 2)
	for _, c := range []EndpointConfig{c1, c2} {
		if _, err := h.plane.EnsureEndpoint(c); err != nil {
			t.Fatalf("EnsureEndpoint: %v", err)
		}
	}
	for i := range 2 {
		if err := h.plane.DeleteEndpoint(c1.VNI, c1.ID); err != nil {
			t.Fatalf("DeleteEndpoint #%d: %v", i+1, err)
		}
	}
	checkEndpoint(t, h, c2)
	if ids, err := h.plane.Endpoints(4203); err != nil || !slices.Equal(ids, []string{c2.ID[:12]}) {
		t.Errorf("Endpoints = %v, %v", ids, err)
	}
	if err := h.plane.DeleteEndpoint(c2.VNI, c2.ID); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	if names := linkNames(t, handleIn(t, h.ns)); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("host links %v, want only lo", names)
	}
	if names := linkNames(t, h.nsHandle(t, 4203)); !slices.Equal(names, []string{bridgeName, "lo", vxlanName}) {
		t.Errorf("network links %v, want br0, lo, vxlan0", names)
	}
	if err := h.plane.DeleteEndpoint(4999, c1.ID); err != nil {
		t.Errorf("DeleteEndpoint in a missing network: %v", err)
	}
}

func TestEndpointMissingNetwork(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	if _, err := h.plane.EnsureEndpoint(testEndpoint(4204, 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnsureEndpoint without network = %v, want ErrNotFound", err)
	}
	if _, err := h.plane.Endpoints(4204); !errors.Is(err, ErrNotFound) {
		t.Errorf("Endpoints without network = %v, want ErrNotFound", err)
	}
	if err := h.plane.SetPeers(4204, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPeers without network = %v, want ErrNotFound", err)
	}
}

// Endpoints of one network are created and deleted in parallel, with peer
// updates running alongside, as fifty `docker run` at once do: every pair
// comes out whole, and deleting them all leaves the namespace as it was.
func TestParallelEndpoints(t *testing.T) {
	const vni, n = 4205, 16
	h := setupNetwork(t, vni)
	inHost := func(fn func() error) error {
		// A goroutine's thread is in the process's namespace, not the
		// test host's: enter it, and let the thread die with the goroutine.
		runtime.LockOSThread()
		if err := netns.Set(h.ns); err != nil {
			return err
		}
		return fn()
	}
	parallel := func(what string, fn func(c EndpointConfig) error) {
		t.Helper()
		errs := make(chan error, n+1)
		for i := range n {
			go func() { errs <- inHost(func() error { return fn(testEndpoint(vni, i)) }) }()
		}
		go func() {
			errs <- inHost(func() error {
				return h.plane.SetPeers(vni, []Peer{peer("198.19.1.200", "02:42:c6:13:00:c8", "198.18.0.9")})
			})
		}()
		for range n + 1 {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	parallel("EnsureEndpoint", func(c EndpointConfig) error { _, err := h.plane.EnsureEndpoint(c); return err })
	for i := range n {
		checkEndpoint(t, h, testEndpoint(vni, i))
	}
	if ids, err := h.plane.Endpoints(vni); err != nil || len(ids) != n {
		t.Fatalf("Endpoints = %d, %v; want %d", len(ids), err, n)
	}
	parallel("DeleteEndpoint", func(c EndpointConfig) error { return h.plane.DeleteEndpoint(vni, c.ID) })
	if names := linkNames(t, handleIn(t, h.ns)); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("host links %v, want only lo", names)
	}
	if names := linkNames(t, h.nsHandle(t, vni)); !slices.Equal(names, []string{bridgeName, "lo", vxlanName}) {
		t.Errorf("network links %v, want br0, lo, vxlan0", names)
	}
}

// TestEnsureEndpointFullBridge: the kernel's bridge takes at most 1023
// ports (port numbers 1 to BR_MAX_PORTS-1), so a network holds at most 1022
// endpoints on a host besides its VXLAN port. One more fails with an error
// that says so, not with the bare errno ("exchange full"), and leaves no
// pair behind.
func TestEnsureEndpointFullBridge(t *testing.T) {
	h := setupNetwork(t, 4209)
	nh := h.nsHandle(t, 4209)
	br := mustLinkIn(t, nh, bridgeName)
	ports := 0
	for _, l := range mustLinks(t, nh) {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ports++
		}
	}
	// One delete of the whole group at the end: a delete each costs the
	// kernel an RCU grace period, about 20 s for the thousand.
	const fillGroup = 7
	defer func() {
		out, err := exec.Command("nsenter", "--net="+h.plane.nsPath(4209), "ip", "link", "delete", "group", fmt.Sprint(fillGroup)).CombinedOutput()
		if err != nil {
			t.Errorf("delete filler ports: %v: %s", err, out)
		}
	}()
	for i := ports; i < 1023; i++ {
		// ifb: the cheapest device a bridge takes (this kernel has no dummy)
		d := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("fill%d", i), MasterIndex: br.Attrs().Index, Group: fillGroup}}
		if err := nh.LinkAdd(d); err != nil {
			t.Fatalf("filling br0, port %d: %v", i, err)
		}
	}
	c := testEndpoint(4209, 1)
	_, err := h.plane.EnsureEndpoint(c)
	if err == nil {
		t.Fatal("EnsureEndpoint on a bridge with 1023 ports succeeded")
	}
	if !strings.Contains(err.Error(), "1023 ports") || !strings.Contains(err.Error(), "1022 endpoints") {
		t.Errorf("error %q does not name the bridge's limit", err)
	}
	n := namesFor(c.ID)
	for _, name := range linkNames(t, nh) {
		if name == n.port {
			t.Errorf("port %q left in the network namespace", name)
		}
	}
	for _, name := range linkNames(t, handleIn(t, h.ns)) {
		if name == n.host {
			t.Errorf("container side %q left in the host namespace", name)
		}
	}
}

func mustLinks(t *testing.T, nh *netlink.Handle) []netlink.Link {
	t.Helper()
	ls, err := nh.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}
