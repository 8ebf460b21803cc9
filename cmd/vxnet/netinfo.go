package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// vxlanOverhead is what VXLAN adds to each frame: outer IPv4 (20) or IPv6
// (40) header + UDP (8) + VXLAN (8) + inner Ethernet (14).
const (
	vxlanOverhead  = 50
	vxlanOverhead6 = 70
)

// overlayMTU is the largest MTU a network can have over this underlay.
func (u underlay) overlayMTU() int {
	if u.Addr.Is6() && !u.Addr.Is4In6() {
		return u.MTU - vxlanOverhead6
	}
	return u.MTU - vxlanOverhead
}

// underlay is the host's address for VXLAN and the MTU it allows.
type underlay struct {
	Addr netip.Addr
	Link string
	MTU  int
}

// findUnderlay returns the given address with the MTU of the interface
// holding it, or, when addr is empty, the first IPv4 address of the
// interface of the default route.
func findUnderlay(addr string) (underlay, error) {
	if addr != "" {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return underlay{}, fmt.Errorf("advertise address %q: %w", addr, err)
		}
		return linkOf(a)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return underlay{}, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return underlay{}, fmt.Errorf("default route interface %d: %w", r.LinkIndex, err)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil || len(addrs) == 0 {
			return underlay{}, fmt.Errorf("default route interface %q has no IPv4 address", link.Attrs().Name)
		}
		a, _ := netip.AddrFromSlice(addrs[0].IP.To4())
		return underlay{Addr: a, Link: link.Attrs().Name, MTU: link.Attrs().MTU}, nil
	}
	return underlay{}, errors.New("no default route: set --advertise-addr")
}

func linkOf(a netip.Addr) (underlay, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return underlay{}, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return underlay{}, fmt.Errorf("addresses of %q: %w", l.Attrs().Name, err)
		}
		for _, la := range addrs {
			if la.IP.Equal(net.IP(a.AsSlice())) {
				return underlay{Addr: a, Link: l.Attrs().Name, MTU: l.Attrs().MTU}, nil
			}
		}
	}
	return underlay{}, fmt.Errorf("advertise address %s is on no interface of this host", a)
}
