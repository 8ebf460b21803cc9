package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tempVxlanName is the unique host-side name a VXLAN device has between its
// creation in the host namespace and its move into the network namespace.
func tempVxlanName(vni uint32) string {
	return fmt.Sprintf("vxt%06x", vni)
}

// vxlanMatches reports whether an existing device has the configuration
// that only a recreate can change.
func vxlanMatches(v *netlink.Vxlan, c NetworkConfig) bool {
	return v.VxlanId == int(c.VNI) && v.Port == c.Port && !v.Learning && v.Proxy &&
		sameIP(v.SrcAddr, c.LocalIP)
}

// sameIP compares addresses, treating nil and the unspecified address alike.
func sameIP(a, b net.IP) bool {
	if len(a) == 0 || a.IsUnspecified() {
		return len(b) == 0 || b.IsUnspecified()
	}
	return a.Equal(b)
}

// checkVxlan runs inside the network namespace. A matching vxlan0 is
// repaired in place (MTU, master, up) and false returned; a missing one
// returns true; a mismatching one (or a non-VXLAN link of that name) is
// deleted and true returned.
func checkVxlan(log *logrus.Entry, c NetworkConfig) (bool, error) {
	l, err := linkByName(log, vxlanName)
	if err != nil {
		return false, err
	}
	if l == nil {
		return true, nil
	}
	if v, ok := l.(*netlink.Vxlan); ok && vxlanMatches(v, c) {
		return false, attachVxlanPort(log, c.MTU)
	}
	log.WithField("link", vxlanName).Info("vxlan config differs, recreating")
	if _, err := deleteLink(log, vxlanName); err != nil {
		return false, err
	}
	return true, nil
}

// createVxlan creates the VXLAN device in the caller's (host) namespace, so
// its UDP socket lives in the underlay, moves it into the network namespace,
// renames it vxlan0 and makes it an up port of br0.
func createVxlan(log *logrus.Entry, path string, c NetworkConfig, rb *rollback) error {
	tmp := tempVxlanName(c.VNI)
	// A device left behind by a crash between create and move holds the VNI.
	if _, err := deleteLink(log, tmp); err != nil {
		return err
	}
	v := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: tmp, MTU: c.MTU},
		VxlanId:   int(c.VNI),
		Port:      c.Port,
		Learning:  false,
		Proxy:     true,
		SrcAddr:   c.LocalIP,
	}
	log.WithFields(logrus.Fields{"link": tmp, "port": c.Port}).Debug("netlink: add vxlan")
	if err := netlink.LinkAdd(v); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create vxlan %q: VNI %d on UDP port %d is held by another VXLAN device on this host, e.g. Docker's swarm ingress (%w: %w)",
				tmp, c.VNI, c.Port, ErrVNIInUse, err)
		}
		return fmt.Errorf("create vxlan %q (vni %d): %w", tmp, c.VNI, err)
	}
	rb.push("vxlan "+tmp, func() error { return removeVxlan(log, path, tmp) })
	err := withNsFd(path, func(fd int) error {
		log.WithFields(logrus.Fields{"link": tmp, "netns": path}).Debug("netlink: move link to netns")
		return netlink.LinkSetNsFd(v, fd)
	})
	if err != nil {
		return fmt.Errorf("move vxlan %q (vni %d) to netns %q: %w", tmp, c.VNI, path, err)
	}
	err = inNetns(log, path, func() error {
		l, err := mustLink(log, tmp)
		if err != nil {
			return err
		}
		log.WithFields(logrus.Fields{"link": tmp, "name": vxlanName}).Debug("netlink: rename link")
		if err := netlink.LinkSetName(l, vxlanName); err != nil {
			return fmt.Errorf("rename link %q to %q: %w", tmp, vxlanName, err)
		}
		return attachVxlanPort(log, c.MTU)
	})
	if err != nil {
		return fmt.Errorf("set up vxlan %q (vni %d) in netns %q: %w", vxlanName, c.VNI, path, err)
	}
	log.WithFields(logrus.Fields{"link": vxlanName, "port": c.Port, "local": c.LocalIP}).Info("created vxlan")
	return nil
}

// removeVxlan deletes a half-made VXLAN device wherever it got to: still in
// the host namespace under its temporary name, or in the network namespace
// under either name.
func removeVxlan(log *logrus.Entry, path, tmp string) error {
	_, herr := deleteLink(log, tmp)
	nerr := inNetns(log, path, func() error {
		_, err1 := deleteLink(log, tmp)
		_, err2 := deleteLink(log, vxlanName)
		return errors.Join(err1, err2)
	})
	return errors.Join(herr, nerr)
}

// attachVxlanPort makes vxlan0 an up port of br0 that does not learn. A
// learning port would learn the MACs of remote containers; when an address
// (and with it the MAC derived from it) later moves to a local container,
// br0 would keep sending its frames back out to vxlan0 until the entry
// aged out. Remote MACs are known from the store (SetPeers) instead.
func attachVxlanPort(log *logrus.Entry, mtu int) error {
	if err := attachPort(log, vxlanName, mtu); err != nil {
		return err
	}
	l, err := mustLink(log, vxlanName)
	if err != nil {
		return err
	}
	pi, err := netlink.LinkGetProtinfo(l)
	if err != nil {
		return fmt.Errorf("read bridge port flags of %q: %w", vxlanName, err)
	}
	if !pi.Learning {
		return nil
	}
	log.WithField("link", vxlanName).Debug("netlink: bridge port learning off")
	if err := netlink.LinkSetLearning(l, false); err != nil {
		return fmt.Errorf("turn off learning on bridge port %q: %w", vxlanName, err)
	}
	return nil
}
