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

// The kernel entries of peerEntries: how each is built, recognised in a
// dump, written and deleted.

// ownedEntries reads vxlan0's entries that SetPeers writes: permanent
// neighbours, permanent VXLAN FDB entries with a remote destination (the
// all-zeros MAC ones are flood entries), and static (not permanent) bridge
// entries on the port. The bridge's own permanent entry for vxlan0's MAC is
// not included.
func ownedEntries(log *logrus.Entry, idx int) (peerEntries, error) {
	have := newPeerEntries()
	log.WithField("link", vxlanName).Debug("netlink: list neighbours")
	neighs, err := dump("neighbours of "+vxlanName, func() ([]netlink.Neigh, error) {
		return netlink.NeighList(idx, netlink.FAMILY_ALL)
	})
	if err != nil {
		return have, err
	}
	log.WithField("link", vxlanName).Debug("netlink: list fdb")
	fdbs, err := dump("fdb of "+vxlanName, func() ([]netlink.Neigh, error) {
		fdbs, _, err := portFDB(idx)
		return fdbs, err
	})
	if err != nil {
		return have, err
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && n.State&netlink.NUD_PERMANENT != 0 && len(n.HardwareAddr) == 6 {
			have.neigh[ip.Unmap()] = [6]byte(n.HardwareAddr)
		}
	}
	for _, f := range fdbs {
		if len(f.HardwareAddr) != 6 {
			continue
		}
		mac := [6]byte(f.HardwareAddr)
		if f.MasterIndex != 0 || f.Flags&netlink.NTF_MASTER != 0 {
			if f.State&netlink.NUD_NOARP != 0 && f.State&netlink.NUD_PERMANENT == 0 && f.Vlan == 0 {
				have.master[mac] = true
			}
			continue
		}
		vtep, ok := netip.AddrFromSlice(f.IP)
		if !ok || f.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		if mac == [6]byte{} {
			have.flood[vtep.Unmap()] = true
		} else {
			have.fdb[fdbKey{mac: mac, vtep: vtep.Unmap()}] = true
		}
	}
	return have, nil
}

// neighEntry is a permanent neighbour entry; the address family follows ip.
func neighEntry(idx int, ip netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	family := netlink.FAMILY_V6
	if ip.Is4() {
		family = netlink.FAMILY_V4
	}
	return &netlink.Neigh{
		LinkIndex:    idx,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		IP:           net.IP(ip.AsSlice()),
		HardwareAddr: mac,
	}
}

// fdbEntry is a static FDB entry on the VXLAN device itself (self).
func fdbEntry(idx int, k fdbKey) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           net.IP(k.vtep.AsSlice()),
		HardwareAddr: net.HardwareAddr(k.mac[:]),
	}
}

// floodEntry is the all-zeros-MAC VXLAN entry for one remote VTEP: vxlan0
// sends a copy of every broadcast, multicast and unknown unicast frame to
// each such destination. Several share the MAC, so they are appended.
func floodEntry(idx int, vtep netip.Addr) *netlink.Neigh {
	return fdbEntry(idx, fdbKey{vtep: vtep})
}

// masterEntry is br0's static FDB entry sending frames for a remote MAC to
// port vxlan0. NUD_NOARP is iproute2's "static": NUD_PERMANENT would make
// it a local address of the bridge.
func masterEntry(idx int, mac [6]byte) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_NOARP,
		Flags:        netlink.NTF_MASTER,
		HardwareAddr: net.HardwareAddr(mac[:]),
	}
}

// neighOp sets (create or replace), appends or deletes a neighbour or FDB
// entry. Deleting an entry that is already gone is not an error.
func neighOp(log *logrus.Entry, op string, n *netlink.Neigh) error {
	kind, from, to := "neighbour", n.IP.String(), n.HardwareAddr.String()
	switch {
	case n.Family == unix.AF_BRIDGE && n.Flags&netlink.NTF_MASTER != 0:
		kind, from, to = "bridge fdb entry", to, "port "+vxlanName
	case n.Family == unix.AF_BRIDGE && [6]byte(n.HardwareAddr) == [6]byte{}:
		kind, from = "flood entry", "all hosts"
	case n.Family == unix.AF_BRIDGE:
		kind, from, to = "fdb entry", to, from
	}
	f := logrus.Fields{"link": vxlanName, "ip": n.IP, "mac": n.HardwareAddr}
	log.WithFields(f).Debugf("netlink: %s %s", op, kind)
	var err error
	switch op {
	case "delete":
		err = netlink.NeighDel(n)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
	case "append":
		err = netlink.NeighAppend(n)
	default:
		err = netlink.NeighSet(n)
	}
	if err != nil {
		return fmt.Errorf("%s %s %s → %s on %q: %w", op, kind, from, to, vxlanName, err)
	}
	log.WithFields(f).Infof("%s %s", op, kind)
	return nil
}
