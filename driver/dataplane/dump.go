package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
)

// NetworkState is what the kernel holds for one network, as read by Dump:
// the read-only view `vxnet status` compares with the store. It changes
// nothing, so it may run next to a serving plugin.
type NetworkState struct {
	VNI    uint32
	Netns  string // the namespace file
	Bridge bool   // br0 exists
	VXLAN  bool   // vxlan0 exists and is a port of br0
	// Ports are the endpoint IDs (12-character prefixes) with a vxp port
	// on br0.
	Ports []string
	// Neigh, FDB, Flood and Master are vxlan0's entries of the kinds
	// SetPeers writes (see peerEntries).
	Neigh  map[netip.Addr]net.HardwareAddr
	FDB    []FDBEntry
	Flood  []netip.Addr
	Master []net.HardwareAddr
}

// FDBEntry is a VXLAN FDB entry: frames for MAC go to VTEP.
type FDBEntry struct {
	MAC  net.HardwareAddr
	VTEP netip.Addr
}

// Dump reads the state of every live vxnet namespace in netnsDir, sorted
// by VNI. Unlike New it creates and mounts nothing.
func Dump(netnsDir string) ([]NetworkState, error) {
	if _, err := os.Stat(netnsDir); os.IsNotExist(err) {
		return nil, nil
	}
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	p := &Plane{dir: filepath.Clean(netnsDir), log: log}
	vnis, err := p.Networks()
	if err != nil {
		return nil, err
	}
	var out []NetworkState
	for _, vni := range vnis {
		st := NetworkState{VNI: vni, Netns: p.nsPath(vni)}
		if err := inNetns(log, st.Netns, func() error { return dumpNetwork(log, &st) }); err != nil {
			return nil, fmt.Errorf("read network namespace %q (vni %d): %w", st.Netns, vni, err)
		}
		if st.Bridge {
			if st.Ports, err = p.Endpoints(vni); err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// dumpNetwork runs inside a network's namespace.
func dumpNetwork(log *logrus.Entry, st *NetworkState) error {
	br, err := linkByName(log, bridgeName)
	if err != nil {
		return err
	}
	vx, err := linkByName(log, vxlanName)
	if err != nil {
		return err
	}
	st.Bridge = br != nil
	st.VXLAN = br != nil && vx != nil && vx.Attrs().MasterIndex == br.Attrs().Index
	if vx == nil {
		return nil
	}
	have, err := ownedEntries(log, vx.Attrs().Index)
	if err != nil {
		return err
	}
	st.Neigh = map[netip.Addr]net.HardwareAddr{}
	for ip, mac := range have.neigh {
		st.Neigh[ip] = net.HardwareAddr(mac[:])
	}
	for k := range have.fdb {
		st.FDB = append(st.FDB, FDBEntry{MAC: net.HardwareAddr(k.mac[:]), VTEP: k.vtep})
	}
	for v := range have.flood {
		st.Flood = append(st.Flood, v)
	}
	for mac := range have.master {
		st.Master = append(st.Master, net.HardwareAddr(mac[:]))
	}
	return nil
}
