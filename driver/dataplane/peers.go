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

// Peer is a remote endpoint: its overlay address and MAC, and the underlay
// address of the host (VTEP) that has it.
type Peer struct {
	IP   netip.Addr
	MAC  net.HardwareAddr
	VTEP net.IP
}

// fdbKey identifies a static FDB entry on vxlan0: MAC → remote VTEP.
type fdbKey struct {
	mac  [6]byte
	vtep netip.Addr
}

// SetPeers converges the remote endpoints known to vxlan0: each peer gets a
// permanent neighbour entry (IP → MAC, for the ARP/ND proxy) and then a
// static FDB entry (MAC → VTEP). Permanent entries on vxlan0 for peers not in
// the list are removed, FDB first. IPv4 and IPv6 peers take the same path.
func (p *Plane) SetPeers(vni uint32, peers []Peer) error {
	if err := validateVNI(vni); err != nil {
		return err
	}
	if err := validatePeers(vni, peers); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	p.peerMu.Lock()
	defer p.peerMu.Unlock()
	path, err := p.liveNs(vni)
	if err != nil {
		return err
	}
	log := p.log.WithField("vni", vni)
	if err := inNetns(path, func() error { return convergePeers(log, peers) }); err != nil {
		return fmt.Errorf("set peers on %q (vni %d) in netns %q: %w", vxlanName, vni, path, err)
	}
	return nil
}

// convergePeers runs inside the network namespace.
func convergePeers(log *logrus.Entry, peers []Peer) error {
	vx, err := mustLink(log, vxlanName)
	if err != nil {
		return err
	}
	idx := vx.Attrs().Index
	haveNeigh, haveFDB, err := ownedEntries(log, idx)
	if err != nil {
		return err
	}
	wantNeigh := make(map[netip.Addr]bool, len(peers))
	wantFDB := make(map[fdbKey]bool, len(peers))
	for _, pr := range peers {
		ip, key := peerKeys(pr)
		wantNeigh[ip], wantFDB[key] = true, true
		if mac, ok := haveNeigh[ip]; !ok || mac != key.mac {
			if err := neighOp(log, "set", neighEntry(idx, ip, pr.MAC)); err != nil {
				return err
			}
		}
	}
	for _, pr := range peers {
		if _, key := peerKeys(pr); !haveFDB[key] {
			if err := neighOp(log, "set", fdbEntry(idx, key)); err != nil {
				return err
			}
		}
	}
	for key := range haveFDB {
		if !wantFDB[key] {
			if err := neighOp(log, "delete", fdbEntry(idx, key)); err != nil {
				return err
			}
		}
	}
	for ip := range haveNeigh {
		if !wantNeigh[ip] {
			if err := neighOp(log, "delete", neighEntry(idx, ip, nil)); err != nil {
				return err
			}
		}
	}
	return nil
}

// peerKeys returns a validated peer's neighbour and FDB keys.
func peerKeys(pr Peer) (netip.Addr, fdbKey) {
	vtep, _ := netip.AddrFromSlice(pr.VTEP)
	k := fdbKey{vtep: vtep.Unmap()}
	copy(k.mac[:], pr.MAC)
	return pr.IP.Unmap(), k
}

// ownedEntries returns the permanent neighbour entries (IP → MAC) and static
// FDB entries with a remote destination on vxlan0: what SetPeers writes. The
// bridge's own entries for the port (they carry a master) are not included.
func ownedEntries(log *logrus.Entry, idx int) (map[netip.Addr][6]byte, map[fdbKey]bool, error) {
	log.WithField("link", vxlanName).Debug("netlink: list neighbours")
	neighs, err := dump("neighbours of "+vxlanName, func() ([]netlink.Neigh, error) {
		return netlink.NeighList(idx, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, nil, err
	}
	log.WithField("link", vxlanName).Debug("netlink: list fdb")
	fdbs, err := dump("fdb of "+vxlanName, func() ([]netlink.Neigh, error) {
		return netlink.NeighList(idx, unix.AF_BRIDGE)
	})
	if err != nil {
		return nil, nil, err
	}
	haveNeigh := make(map[netip.Addr][6]byte)
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && n.State&netlink.NUD_PERMANENT != 0 && len(n.HardwareAddr) == 6 {
			haveNeigh[ip.Unmap()] = [6]byte(n.HardwareAddr)
		}
	}
	haveFDB := make(map[fdbKey]bool)
	for _, f := range fdbs {
		vtep, ok := netip.AddrFromSlice(f.IP)
		if !ok || f.MasterIndex != 0 || f.State&netlink.NUD_PERMANENT == 0 || len(f.HardwareAddr) != 6 {
			continue
		}
		k := fdbKey{mac: [6]byte(f.HardwareAddr), vtep: vtep.Unmap()}
		if k.mac != [6]byte{} { // the all-zeros default destination is not ours
			haveFDB[k] = true
		}
	}
	return haveNeigh, haveFDB, nil
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

// neighOp sets (create or replace) or deletes a neighbour or FDB entry.
// Deleting an entry that is already gone is not an error.
func neighOp(log *logrus.Entry, op string, n *netlink.Neigh) error {
	kind, from, to := "neighbour", n.IP.String(), n.HardwareAddr.String()
	if n.Family == unix.AF_BRIDGE {
		kind, from, to = "fdb entry", to, from
	}
	f := logrus.Fields{"link": vxlanName, "ip": n.IP, "mac": n.HardwareAddr}
	log.WithFields(f).Debugf("netlink: %s %s", op, kind)
	var err error
	if op == "delete" {
		err = netlink.NeighDel(n)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
	} else {
		err = netlink.NeighSet(n)
	}
	if err != nil {
		return fmt.Errorf("%s %s %s → %s on %q: %w", op, kind, from, to, vxlanName, err)
	}
	log.WithFields(f).Infof("%s %s", op, kind)
	return nil
}
