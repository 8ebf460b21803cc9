package main

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/scope"
)

// checkDrift compares this host's kernel with what the store says the
// host has: a namespace with br0 and vxlan0 per network of the host, a
// bridge port per local endpoint, and on vxlan0 the neighbour, FDB, flood
// and bridge entries of the other hosts' endpoints (the plugin's own
// selection, driver.WantedPeers). Every difference is one line naming the
// VNI and the object. Entries a silent host's records ask for may be
// missing (the plugin leaves out a gone host's): that is a note, not drift.
func checkDrift(s *Status, kernel []dataplane.NetworkState) []string {
	drift := []string{}
	have := map[uint32]*dataplane.NetworkState{}
	for i := range kernel {
		have[kernel[i].VNI] = &kernel[i]
	}
	silent := map[string]bool{}
	for _, h := range s.Hosts {
		silent[h.ID] = h.State != "alive"
	}
	mine := map[uint32]bool{}
	for _, n := range s.Networks {
		if _, ok := n.Hosts[s.Host]; !ok {
			continue
		}
		mine[n.VNI] = true
		k := have[n.VNI]
		if k == nil {
			drift = append(drift, fmt.Sprintf("network %s (vni %d): namespace vx-%d missing", n.Key, n.VNI, n.VNI))
			continue
		}
		drift = append(drift, linkDrift(n, k, s.localEndpoints(n.Key))...)
		want := driver.WantedPeers(s.peerKVs[n.Key], s.Host, s.vtep, scope.Local)
		d, notes := peerDrift(n.VNI, want, k, s.vtepHosts(), silent)
		drift = append(drift, d...)
		s.Notes = append(s.Notes, notes...)
	}
	for _, k := range kernel {
		if !mine[k.VNI] {
			drift = append(drift, fmt.Sprintf("vni %d: namespace %s exists, but the store gives host %s no network with this VNI", k.VNI, k.Netns, s.Host))
		}
	}
	return drift
}

// localEndpoints are the IDs (12 characters) of this host's endpoints in
// network key.
func (s *Status) localEndpoints(key string) []string {
	var out []string
	for _, ep := range s.Endpoints {
		if ep.Network == key && ep.Host == s.Host {
			out = append(out, ep.ID)
		}
	}
	return out
}

// vtepHosts maps VTEPs to the hosts that have them.
func (s *Status) vtepHosts() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, h := range s.Hosts {
		for _, v := range h.VTEPs {
			if a, err := netip.ParseAddr(v); err == nil {
				out[a] = h.ID
			}
		}
	}
	return out
}

func linkDrift(n NetworkStatus, k *dataplane.NetworkState, eps []string) []string {
	var drift []string
	if !k.Bridge {
		drift = append(drift, fmt.Sprintf("network %s (vni %d): bridge br0 missing", n.Key, n.VNI))
	}
	if !k.VXLAN {
		drift = append(drift, fmt.Sprintf("network %s (vni %d): vxlan0 missing or not a port of br0", n.Key, n.VNI))
	}
	for _, id := range eps {
		if !slices.Contains(k.Ports, id) {
			drift = append(drift, fmt.Sprintf("network %s (vni %d): endpoint %s has no port vxp%s on br0", n.Key, n.VNI, id, id))
		}
	}
	for _, p := range k.Ports {
		if !slices.Contains(eps, p) {
			drift = append(drift, fmt.Sprintf("network %s (vni %d): port vxp%s on br0 has no endpoint record of this host", n.Key, n.VNI, p))
		}
	}
	return drift
}

// entry is one kernel entry in words, and the host whose record wants it.
type entry struct {
	what string
	host string
}

// peerDrift compares vxlan0's entries with the wanted peers.
func peerDrift(vni uint32, want []dataplane.Peer, k *dataplane.NetworkState, hostOf map[netip.Addr]string, silent map[string]bool) (drift, notes []string) {
	wanted := map[string]entry{}
	for _, p := range want {
		vtep, _ := netip.AddrFromSlice(p.VTEP)
		h := hostOf[vtep.Unmap()]
		wanted[neighText(p.IP, p.MAC)] = entry{"neighbour", h}
		wanted[fdbText(p.MAC, vtep.Unmap())] = entry{"fdb", h}
		wanted[floodText(vtep.Unmap())] = entry{"flood", h}
		wanted[masterText(p.MAC)] = entry{"bridge fdb", h}
	}
	got := map[string]bool{}
	for ip, mac := range k.Neigh {
		got[neighText(ip, mac)] = true
	}
	for _, f := range k.FDB {
		got[fdbText(f.MAC, f.VTEP)] = true
	}
	for _, v := range k.Flood {
		got[floodText(v)] = true
	}
	for _, m := range k.Master {
		got[masterText(m)] = true
	}
	for _, text := range sortedKeys(wanted) {
		if got[text] {
			continue
		}
		e := wanted[text]
		if silent[e.host] {
			notes = append(notes, fmt.Sprintf("vni %d: %s missing; its host %s is silent, and the plugin leaves a gone host's entries out", vni, text, e.host))
			continue
		}
		drift = append(drift, fmt.Sprintf("vni %d: %s missing (endpoint of host %s)", vni, text, e.host))
	}
	for _, text := range sortedKeys(got) {
		if _, ok := wanted[text]; !ok {
			drift = append(drift, fmt.Sprintf("vni %d: %s present, but no endpoint record wants it", vni, text))
		}
	}
	return drift, notes
}

func neighText(ip netip.Addr, mac net.HardwareAddr) string {
	return fmt.Sprintf("neighbour %s lladdr %s on vxlan0", ip.Unmap(), mac)
}
func fdbText(mac net.HardwareAddr, vtep netip.Addr) string {
	return fmt.Sprintf("fdb %s dst %s on vxlan0", mac, vtep)
}
func floodText(vtep netip.Addr) string {
	return fmt.Sprintf("flood fdb 00:00:00:00:00:00 dst %s on vxlan0", vtep)
}
func masterText(mac net.HardwareAddr) string {
	return fmt.Sprintf("bridge fdb %s master br0 on vxlan0", mac)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
