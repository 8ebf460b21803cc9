package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureBridge makes br0 exist, up, with the given MTU, inside the current
// namespace. A link named br0 that is not a bridge is replaced. It reports
// whether it created the bridge.
func ensureBridge(log *logrus.Entry, mtu int) (bool, error) {
	l, err := linkByName(log, bridgeName)
	if err != nil {
		return false, err
	}
	created := false
	if l != nil && l.Type() != "bridge" {
		log.WithFields(logrus.Fields{"link": bridgeName, "type": l.Type()}).Info("replacing link that is not a bridge")
		if _, err := deleteLink(log, bridgeName); err != nil {
			return false, err
		}
		l = nil
	}
	if l == nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: mtu}}
		if err := addLink(log, br); err != nil {
			return false, err
		}
		log.WithField("link", bridgeName).Info("created bridge")
		created = true
		if l, err = mustLink(log, bridgeName); err != nil {
			return created, err
		}
	}
	if err := setMTU(log, l, mtu); err != nil {
		return created, err
	}
	return created, setUp(log, l)
}

// ensureAddrs converges br0's addresses to want: missing ones are added
// (IPv6 with nodad), other global ones removed; kernel-made IPv6 link-local
// addresses are left alone. It returns the addresses it added.
func ensureAddrs(log *logrus.Entry, want []netip.Prefix) ([]netip.Prefix, error) {
	br, err := mustLink(log, bridgeName)
	if err != nil {
		return nil, err
	}
	log.WithField("link", bridgeName).Debug("netlink: list addresses")
	have, err := dump("addresses of "+bridgeName, func() ([]netlink.Addr, error) {
		return netlink.AddrList(br, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, err
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	present := make(map[netip.Prefix]bool, len(have))
	for _, a := range have {
		pfx, ok := addrPrefix(a)
		if !ok || pfx.Addr().IsLinkLocalUnicast() {
			continue
		}
		present[pfx] = true
		if !wanted[pfx] {
			if err := delAddr(log, br, pfx); err != nil {
				return nil, err
			}
		}
	}
	var added []netip.Prefix
	for _, w := range want {
		if present[w] {
			continue
		}
		log.WithFields(logrus.Fields{"link": bridgeName, "addr": w}).Debug("netlink: add address")
		if err := netlink.AddrAdd(br, nlAddr(w)); err != nil {
			return added, fmt.Errorf("add address %q to %q: %w", w, bridgeName, err)
		}
		log.WithFields(logrus.Fields{"link": bridgeName, "addr": w}).Info("added gateway address")
		added = append(added, w)
	}
	return added, nil
}

// deleteAddrs removes the given addresses from br0 (for rollback).
func deleteAddrs(log *logrus.Entry, addrs []netip.Prefix) error {
	br, err := linkByName(log, bridgeName)
	if err != nil || br == nil {
		return err
	}
	for _, a := range addrs {
		if err := delAddr(log, br, a); err != nil {
			return err
		}
	}
	return nil
}

func delAddr(log *logrus.Entry, l netlink.Link, pfx netip.Prefix) error {
	name := l.Attrs().Name
	log.WithFields(logrus.Fields{"link": name, "addr": pfx}).Debug("netlink: delete address")
	err := netlink.AddrDel(l, nlAddr(pfx))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete address %q from %q: %w", pfx, name, err)
	}
	log.WithFields(logrus.Fields{"link": name, "addr": pfx}).Info("removed address")
	return nil
}

// nlAddr converts a prefix that keeps its host bits (198.19.1.1/24) into a
// netlink address; IPv6 ones skip duplicate address detection.
func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   net.IP(p.Addr().AsSlice()),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// addrPrefix converts a netlink address back into a prefix.
func addrPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
