package dataplane

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
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

// peerEntries is what SetPeers keeps on vxlan0, in the order it is written:
//   - neigh: permanent neighbour entries IP → MAC, answered by the VXLAN
//     ARP/ND proxy (ARP and ND never leave the host);
//   - fdb: static VXLAN (self) FDB entries MAC → VTEP, where vxlan0 sends
//     a frame for a remote MAC;
//   - flood: all-zeros-MAC VXLAN (self) entries, one per remote VTEP of
//     the network: head-end replication of broadcast, multicast and
//     unknown unicast to every member host;
//   - master: static bridge (master) FDB entries MAC → port vxlan0, so br0
//     sends known remote unicast to vxlan0 alone instead of flooding it to
//     every local container.
//
// Each entry depends on the ones before it; removal runs in reverse.
type peerEntries struct {
	neigh  map[netip.Addr][6]byte
	fdb    map[fdbKey]bool
	flood  map[netip.Addr]bool
	master map[[6]byte]bool
}

func newPeerEntries() peerEntries {
	return peerEntries{
		neigh:  map[netip.Addr][6]byte{},
		fdb:    map[fdbKey]bool{},
		flood:  map[netip.Addr]bool{},
		master: map[[6]byte]bool{},
	}
}

// wantedEntries derives vxlan0's entries from validated peers.
func wantedEntries(peers []Peer) peerEntries {
	w := newPeerEntries()
	for _, pr := range peers {
		ip, key := peerKeys(pr)
		w.neigh[ip] = key.mac
		w.fdb[key] = true
		w.flood[key.vtep] = true
		w.master[key.mac] = true
	}
	return w
}

// SetPeers converges the remote endpoints known to vxlan0 (see
// peerEntries): missing entries are written neighbour first, then VXLAN
// FDB, flood and bridge entries; entries for peers (or VTEPs) no longer in
// the list are removed in the reverse order. The network's VXLAN filter
// admits exactly the peers' VTEPs. IPv4 and IPv6 peers take the same path.
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
	vteps := wantedEntries(peers).flood
	// New VTEPs are admitted before traffic goes to them; gone ones are
	// dropped after their entries.
	if err := syncFilter(log, vni, vteps, false); err != nil {
		return err
	}
	if err := inNetns(log, path, func() error { return convergePeers(log, peers) }); err != nil {
		return fmt.Errorf("set peers on %q (vni %d) in netns %q: %w", vxlanName, vni, path, err)
	}
	return syncFilter(log, vni, vteps, true)
}

// convergePeers runs inside the network namespace.
func convergePeers(log *logrus.Entry, peers []Peer) error {
	vx, err := mustLink(log, vxlanName)
	if err != nil {
		return err
	}
	idx := vx.Attrs().Index
	have, err := ownedEntries(log, idx)
	if err != nil {
		return err
	}
	want := wantedEntries(peers)
	if err := addEntries(log, idx, have, want); err != nil {
		return err
	}
	return removeEntries(log, idx, have, want)
}

// addEntries writes the entries of want that have lacks, in dependency
// order.
func addEntries(log *logrus.Entry, idx int, have, want peerEntries) error {
	for ip, mac := range want.neigh {
		if cur, ok := have.neigh[ip]; !ok || cur != mac {
			if err := neighOp(log, "set", neighEntry(idx, ip, mac[:])); err != nil {
				return err
			}
		}
	}
	for key := range want.fdb {
		if !have.fdb[key] {
			if err := neighOp(log, "set", fdbEntry(idx, key)); err != nil {
				return err
			}
		}
	}
	for vtep := range want.flood {
		if !have.flood[vtep] {
			if err := neighOp(log, "append", floodEntry(idx, vtep)); err != nil {
				return err
			}
		}
	}
	for mac := range want.master {
		if !have.master[mac] {
			if err := neighOp(log, "set", masterEntry(idx, mac)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeEntries deletes the entries of have that want lacks, in reverse
// dependency order.
func removeEntries(log *logrus.Entry, idx int, have, want peerEntries) error {
	for mac := range have.master {
		if !want.master[mac] {
			if err := neighOp(log, "delete", masterEntry(idx, mac)); err != nil {
				return err
			}
		}
	}
	for vtep := range have.flood {
		if !want.flood[vtep] {
			if err := neighOp(log, "delete", floodEntry(idx, vtep)); err != nil {
				return err
			}
		}
	}
	for key := range have.fdb {
		if !want.fdb[key] {
			if err := neighOp(log, "delete", fdbEntry(idx, key)); err != nil {
				return err
			}
		}
	}
	for ip := range have.neigh {
		if _, ok := want.neigh[ip]; !ok {
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
