package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
)

// NetworkConfig describes one VXLAN network on this host.
type NetworkConfig struct {
	VNI       uint32         // 1..16777215
	Port      int            // VXLAN UDP port, e.g. 4789
	LocalIP   net.IP         // VTEP source address (underlay), may be nil
	MTU       int            // MTU for bridge, vxlan and veths
	Addresses []netip.Prefix // gateway addresses to put on the bridge
	// Egress: the network's own egress on this host (egress.go) instead
	// of Docker's docker_gwbridge; it needs an IPv4 address in Addresses.
	Egress bool
}

// EnsureNetwork creates the network's VXLAN filter (filter.go), namespace,
// bridge and VXLAN device, or verifies and repairs them. Gateway addresses on br0 converge to
// c.Addresses; a vxlan0 whose VNI, port, local address or learning/proxy
// flags differ is recreated. On failure what this call created is removed.
// A network that needs no change is only checked, beside the endpoint
// calls (verifyNetwork).
func (p *Plane) EnsureNetwork(c NetworkConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	log := p.log.WithField("vni", c.VNI)
	if err := p.ensureNetwork(log, c); err != nil || !c.Egress {
		return err
	}
	return p.ensureEgress(log, c)
}

func (p *Plane) ensureNetwork(log *logrus.Entry, c NetworkConfig) (err error) {
	if intact, err := p.verifyNetwork(log, c); intact || err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	path := p.nsPath(c.VNI)
	var rb rollback
	defer func() { err = rb.finish(log, err) }()

	created, err := ensureNetnsFile(log, path)
	if err != nil {
		return err
	}
	if created {
		rb.push("netns "+path, func() error { return removeNetnsFile(log, path) })
	}
	var needVxlan bool
	err = inNetns(log, path, func() error {
		var err error
		needVxlan, err = prepareNamespace(log, path, p.sysctl, c, &rb)
		return err
	})
	if err != nil {
		return fmt.Errorf("network vni %d in netns %q: %w", c.VNI, path, err)
	}
	if needVxlan {
		if err := createVxlan(log, path, c, &rb); err != nil {
			return err
		}
	}
	// The filter after vxlan0: a VNI the kernel refuses (Docker's ingress
	// holds it) never gets a rule dropping the other device's traffic. A
	// new namespace has no container yet for a stranger to reach.
	if created {
		rb.push("vxlan filter", func() error { return deleteFilter(log, c.VNI) })
	}
	return ensureFilter(log, c.VNI, c.Port)
}

// prepareNamespace runs inside the network namespace: sysctls, lo, br0 with
// its addresses, and a check of vxlan0. It reports whether vxlan0 must be
// (re)created; a mismatching one has been deleted by then.
func prepareNamespace(log *logrus.Entry, path, sysctlDir string, c NetworkConfig, rb *rollback) (bool, error) {
	if err := setNamespaceSysctls(log, sysctlDir); err != nil {
		return false, err
	}
	lo, err := mustLink(log, "lo")
	if err != nil {
		return false, err
	}
	if err := setUp(log, lo); err != nil {
		return false, err
	}
	created, err := ensureBridge(log, c.MTU)
	if err != nil {
		return false, err
	}
	if created {
		rb.push("bridge "+bridgeName, func() error {
			return inNetns(log, path, func() error { _, err := deleteLink(log, bridgeName); return err })
		})
	}
	added, err := ensureAddrs(log, c.Addresses)
	if err != nil {
		return false, err
	}
	if !created && len(added) > 0 {
		rb.push("gateway addresses", func() error {
			return inNetns(log, path, func() error { return deleteAddrs(log, added) })
		})
	}
	return checkVxlan(log, c)
}

// DeleteNetwork removes the network's links, its namespace and its VXLAN
// filter (filter.go). A network that does not exist is not an error.
func (p *Plane) DeleteNetwork(vni uint32) error {
	if err := validateVNI(vni); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	log := p.log.WithField("vni", vni)
	path := p.nsPath(vni)
	live, err := isNetnsMount(path)
	if err != nil {
		return err
	}
	if live {
		// Delete links explicitly: namespace teardown is asynchronous, and a
		// lingering vxlan0 would keep its VNI busy in the host namespace.
		if err := inNetns(log, path, func() error { return deleteAllLinks(log) }); err != nil {
			return fmt.Errorf("delete links of network vni %d in netns %q: %w", vni, path, err)
		}
	}
	if err := removeNetnsFile(log, path); err != nil {
		return err
	}
	if err := p.deleteEgressRules(log, vni); err != nil {
		return err
	}
	if err := deleteFilter(log, vni); err != nil {
		return err
	}
	if live {
		log.WithField("netns", path).Info("deleted network")
	}
	return nil
}

// deleteAllLinks deletes every link but lo inside a network namespace:
// VXLAN devices first (freeing their VNI in the host namespace at once),
// then the other ports (taking endpoints' host-side peers with them), then
// the bridge.
func deleteAllLinks(log *logrus.Entry) error {
	log.Debug("netlink: list links")
	links, err := dump("links", netlink.LinkList)
	if err != nil {
		return err
	}
	rank := func(l netlink.Link) int {
		switch l.Type() {
		case "vxlan":
			return 0
		case "bridge":
			return 2
		}
		return 1
	}
	sort.SliceStable(links, func(i, j int) bool { return rank(links[i]) < rank(links[j]) })
	for _, l := range links {
		if name := l.Attrs().Name; name != "lo" {
			if _, err := deleteLink(log, name); err != nil {
				return err
			}
		}
	}
	return nil
}
