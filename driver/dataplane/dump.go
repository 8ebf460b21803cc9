package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
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
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns dir %q: %w", netnsDir, err)
	}
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	var out []NetworkState
	for _, e := range entries {
		vni, ok := parseNsName(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(netnsDir, e.Name())
		if live, err := isNetnsMount(path); err != nil || !live {
			if err != nil {
				return nil, err
			}
			continue
		}
		st := NetworkState{VNI: vni, Netns: path}
		if err := inNetns(path, func() error { return dumpNetwork(log, &st) }); err != nil {
			return nil, fmt.Errorf("read network namespace %q (vni %d): %w", path, vni, err)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NetworkState) int { return int(a.VNI) - int(b.VNI) })
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
	if br != nil {
		links, err := dump("links", netlink.LinkList)
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			if id, ok := strings.CutPrefix(a.Name, portPrefix); ok && a.MasterIndex == br.Attrs().Index {
				st.Ports = append(st.Ports, id)
			}
		}
		slices.Sort(st.Ports)
		st.VXLAN = vx != nil && vx.Attrs().MasterIndex == br.Attrs().Index
	}
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
