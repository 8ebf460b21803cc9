package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Thin netlink wrappers: each logs the call at Debug and names the object in
// its error. They act on the namespace of the calling thread.

const dumpRetries = 5

// dump runs a netlink dump, retrying when the kernel reports that the dump
// was interrupted by a concurrent change (its result is then incomplete).
func dump[T any](what string, fn func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpRetries {
		var res []T
		res, err = fn()
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list %s: %w", what, err)
}

// linkByName returns the named link, or nil if there is none.
func linkByName(log *logrus.Entry, name string) (netlink.Link, error) {
	log.WithField("link", name).Debug("netlink: get link")
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get link %q: %w", name, err)
	}
	return l, nil
}

// mustLink returns the named link or an error if it is missing.
func mustLink(log *logrus.Entry, name string) (netlink.Link, error) {
	l, err := linkByName(log, name)
	if err == nil && l == nil {
		err = fmt.Errorf("link %q: %w", name, ErrNotFound)
	}
	return l, err
}

// deleteLink deletes the named link if it exists and reports whether it did.
func deleteLink(log *logrus.Entry, name string) (bool, error) {
	l, err := linkByName(log, name)
	if err != nil || l == nil {
		return false, err
	}
	log.WithField("link", name).Debug("netlink: delete link")
	if err := netlink.LinkDel(l); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("delete link %q: %w", name, err)
	}
	return true, nil
}

func addLink(log *logrus.Entry, l netlink.Link) error {
	a := l.Attrs()
	log.WithFields(logrus.Fields{"link": a.Name, "type": l.Type()}).Debug("netlink: add link")
	if err := netlink.LinkAdd(l); err != nil {
		return fmt.Errorf("create %s %q: %w", l.Type(), a.Name, err)
	}
	return nil
}

// setUp brings a link up unless it already is.
func setUp(log *logrus.Entry, l netlink.Link) error {
	a := l.Attrs()
	if a.Flags&net.FlagUp != 0 {
		return nil
	}
	log.WithField("link", a.Name).Debug("netlink: set link up")
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %q up: %w", a.Name, err)
	}
	return nil
}

// setMTU sets a link's MTU unless it already has it.
func setMTU(log *logrus.Entry, l netlink.Link, mtu int) error {
	a := l.Attrs()
	if a.MTU == mtu {
		return nil
	}
	log.WithFields(logrus.Fields{"link": a.Name, "mtu": mtu}).Debug("netlink: set mtu")
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set mtu %d on link %q: %w", mtu, a.Name, err)
	}
	return nil
}

// setMaster enslaves a link to master unless it already is.
func setMaster(log *logrus.Entry, l, master netlink.Link) error {
	a := l.Attrs()
	if a.MasterIndex == master.Attrs().Index {
		return nil
	}
	log.WithFields(logrus.Fields{"link": a.Name, "master": master.Attrs().Name}).Debug("netlink: set master")
	if err := netlink.LinkSetMaster(l, master); err != nil {
		if errors.Is(err, unix.EXFULL) {
			return fmt.Errorf("enslave link %q to %q: the bridge is full: a Linux bridge takes at most 1023 ports, so a network holds at most 1022 endpoints on one host (one port is its VXLAN device); use another network for more: %w", a.Name, master.Attrs().Name, err)
		}
		return fmt.Errorf("enslave link %q to %q: %w", a.Name, master.Attrs().Name, err)
	}
	return nil
}

// attachPort makes the named link an up port of br0 with the given MTU.
func attachPort(log *logrus.Entry, name string, mtu int) error {
	br, err := mustLink(log, bridgeName)
	if err != nil {
		return err
	}
	l, err := mustLink(log, name)
	if err != nil {
		return err
	}
	if err := setMTU(log, l, mtu); err != nil {
		return err
	}
	if err := setMaster(log, l, br); err != nil {
		return err
	}
	return setUp(log, l)
}
