package dataplane

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
)

// EnsureNetwork runs every reconcile round for each network of the host,
// and almost always finds it intact. Holding the Plane's lock alone for
// that check (5-7 ms) made every Join of the moment wait, and every Join
// that came while it waited for those in flight to finish (issue #13: the
// largest lock wait of the endpoint calls in a profile of the bench's
// Scale step). So EnsureNetwork first checks, sharing the lock with the
// endpoint calls, and takes it alone only to repair.

// verifyNetwork is EnsureNetwork for a network whose namespace needs no
// change: it checks the namespace holding mu shared, and then ensures the
// VXLAN filter under peerMu, as SetPeers changes it. It reports false,
// having changed nothing, when the namespace needs a repair or its check
// failed: EnsureNetwork then repairs, or meets the failure, holding mu
// alone.
func (p *Plane) verifyNetwork(log *logrus.Entry, c NetworkConfig) (bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	path := p.nsPath(c.VNI)
	if live, err := isNetnsMount(path); err != nil || !live {
		return false, nil
	}
	intact := false
	err := inNetns(log, path, func() error {
		var err error
		intact, err = namespaceIntact(log, p.sysctl, c)
		return err
	})
	if err != nil || !intact {
		return false, nil
	}
	p.peerMu.Lock()
	defer p.peerMu.Unlock()
	return true, ensureFilter(log, c.VNI, c.Port)
}

// namespaceIntact runs inside the network namespace and reports whether
// prepareNamespace and checkVxlan would change nothing in it: the
// read-only twin of those two, so a setting either converges belongs in
// both.
func namespaceIntact(log *logrus.Entry, sysctlDir string, c NetworkConfig) (bool, error) {
	for _, s := range namespaceSysctls() {
		have, err := os.ReadFile(filepath.Join(sysctlDir, s.key))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		if err == nil && string(bytes.TrimSpace(have)) != s.value {
			return false, nil
		}
	}
	lo, err := linkByName(log, "lo")
	if err != nil || lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		return false, err
	}
	br, err := linkByName(log, bridgeName)
	if err != nil || br == nil || br.Type() != "bridge" || !upWithMTU(br, c.MTU) {
		return false, err
	}
	if ok, err := addrsAre(log, br, c.Addresses); err != nil || !ok {
		return false, err
	}
	l, err := linkByName(log, vxlanName)
	if err != nil || l == nil {
		return false, err
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok || !vxlanMatches(vx, c) || !upWithMTU(vx, c.MTU) || vx.MasterIndex != br.Attrs().Index {
		return false, nil
	}
	pi, err := netlink.LinkGetProtinfo(vx)
	return err == nil && !pi.Learning, err
}

// upWithMTU reports whether link l is up with MTU mtu.
func upWithMTU(l netlink.Link, mtu int) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && a.MTU == mtu
}

// addrsAre reports whether br's addresses other than IPv6 link-local ones
// are exactly want, as ensureAddrs leaves them.
func addrsAre(log *logrus.Entry, br netlink.Link, want []netip.Prefix) (bool, error) {
	log.WithField("link", bridgeName).Debug("netlink: list addresses")
	have, err := dump("addresses of "+bridgeName, func() ([]netlink.Addr, error) {
		return netlink.AddrList(br, netlink.FAMILY_ALL)
	})
	if err != nil {
		return false, err
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		if pfx, ok := addrPrefix(a); ok && !pfx.Addr().IsLinkLocalUnicast() {
			present[pfx] = true
		}
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	return maps.Equal(present, wanted), nil
}
