package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Status is what `vxnet status --json` prints. Fields are only ever added.
type Status struct {
	Host      string           `json:"host"` // the host whose kernel was checked
	Hosts     []HostStatus     `json:"hosts"`
	Networks  []NetworkStatus  `json:"networks"`
	Endpoints []EndpointStatus `json:"endpoints"`
	// Drift lists every difference between this host's kernel and the
	// store; empty means none.
	Drift []string `json:"drift"`
	// Notes are facts that are no drift, e.g. entries of a silent host the
	// plugin may rightly leave out.
	Notes []string `json:"notes,omitempty"`
	// Monitors are the elected liveness monitors (driver/liveness), by
	// slot; none on bbolt, or while every plugin reads the heartbeats
	// itself.
	Monitors []MonitorStatus `json:"monitors,omitempty"`

	// records of other hosts' endpoints per network key, for the drift check
	peerKVs map[string][]store.KV
	vtep    netip.Addr // this host's VTEP as its endpoint records say
}

// HostStatus is one host of the cluster.
type HostStatus struct {
	ID string `json:"id"`
	// State is "alive" (a heartbeat younger than --dead-after) or
	// "silent" (an old heartbeat, or none: on Consul the key goes with the
	// plugin's session).
	State         string     `json:"state"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
	VTEPs         []string   `json:"vteps"`
	Networks      int        `json:"networks"`
	Endpoints     int        `json:"endpoints"`
}

// MonitorStatus is one liveness monitor slot and the host holding it.
type MonitorStatus struct {
	Slot string `json:"slot"` // its key, liveness/<slot>
	Host string `json:"host"`
	// Healthy is what its record says: false while it cannot read the
	// heartbeats or write its own, and nobody follows it.
	Healthy bool `json:"healthy"`
}

// NetworkStatus is one cluster network.
type NetworkStatus struct {
	Key       string            `json:"key"`
	VNI       uint32            `json:"vni"`
	Subnets   []string          `json:"subnets"`
	Hosts     map[string]string `json:"hosts"` // host → its Docker network ID
	Endpoints int               `json:"endpoints"`
}

// EndpointStatus is one container interface.
type EndpointStatus struct {
	ID      string   `json:"id"`
	Network string   `json:"network"` // network key
	Host    string   `json:"host"`
	Addrs   []string `json:"addrs"`
	MAC     string   `json:"mac"`
	// Container is empty: Docker never tells a network plugin the
	// container's name (docker network inspect on the host does).
	Container string `json:"container"`
}

// readCluster reads hosts, networks and endpoints from the store; host is
// the one whose kernel is checked.
func readCluster(ctx context.Context, st store.Store, host string, deadAfter time.Duration, now time.Time) (*Status, error) {
	s := &Status{Host: host, Drift: []string{}, peerKVs: map[string][]store.KV{}}
	hosts := map[string]*HostStatus{}
	hostOf := func(id string) *HostStatus {
		if hosts[id] == nil {
			hosts[id] = &HostStatus{ID: id, State: "silent", VTEPs: []string{}}
		}
		return hosts[id]
	}
	beats, _, err := st.List(ctx, keys.Heartbeats)
	if err != nil {
		return nil, fmt.Errorf("list heartbeats: %w", err)
	}
	for _, kv := range beats {
		var hb liveness.Heartbeat
		if err := store.Decode(kv, &hb); err != nil {
			return nil, err
		}
		h := hostOf(keys.Last(kv.Key))
		h.LastHeartbeat = &hb.At
		if now.Sub(hb.At) < deadAfter {
			h.State = "alive"
		}
	}
	mons, _, err := st.List(ctx, keys.Monitors)
	if err != nil {
		return nil, fmt.Errorf("list liveness monitors: %w", err)
	}
	for _, kv := range mons {
		var rec liveness.Record
		if err := store.Decode(kv, &rec); err != nil {
			return nil, err
		}
		s.Monitors = append(s.Monitors, MonitorStatus{Slot: kv.Key, Host: rec.Host, Healthy: rec.Healthy})
	}
	nets, _, err := st.List(ctx, keys.Networks)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, kv := range nets {
		var n driver.Network
		if err := store.Decode(kv, &n); err != nil {
			return nil, err
		}
		ns := NetworkStatus{Key: n.Key, VNI: n.VNI, Subnets: prefixStrings(n.Subnets), Hosts: n.Hosts}
		for h := range n.Hosts {
			hostOf(h).Networks++
		}
		eps, _, err := st.List(ctx, keys.Endpoints(n.Key))
		if err != nil {
			return nil, fmt.Errorf("list endpoints of network %q: %w", n.Key, err)
		}
		ns.Endpoints = len(eps)
		s.peerKVs[n.Key] = eps
		for _, kv := range eps {
			var ep driver.Endpoint
			if err := store.Decode(kv, &ep); err != nil {
				return nil, err
			}
			h := hostOf(ep.Host)
			h.Endpoints++
			if v := ep.VTEP.String(); ep.VTEP.IsValid() && !slices.Contains(h.VTEPs, v) {
				h.VTEPs = append(h.VTEPs, v)
			}
			if ep.Host == host && ep.VTEP.IsValid() {
				s.vtep = ep.VTEP
			}
			s.Endpoints = append(s.Endpoints, EndpointStatus{ID: dataplane.ShortID(ep.ID), Network: n.Key, Host: ep.Host, Addrs: prefixStrings(ep.Addrs), MAC: ep.MAC})
		}
		s.Networks = append(s.Networks, ns)
	}
	for _, h := range hosts {
		s.Hosts = append(s.Hosts, *h)
	}
	slices.SortFunc(s.Hosts, func(a, b HostStatus) int { return strings.Compare(a.ID, b.ID) })
	return s, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// only keeps the network named by sel: its key, a subnet, or a Docker
// network ID (or a prefix of at least 12 characters) of any host.
func (s *Status) only(sel string) error {
	var keep *NetworkStatus
	for i, n := range s.Networks {
		if n.Key == sel || slices.Contains(n.Subnets, sel) || dockerIDMatch(n.Hosts, sel) {
			keep = &s.Networks[i]
			break
		}
	}
	if keep == nil {
		return fmt.Errorf("no network %q: want a network key, a subnet as created (e.g. 198.19.1.0/24), or a Docker network ID", sel)
	}
	s.Networks = []NetworkStatus{*keep}
	var eps []EndpointStatus
	for _, ep := range s.Endpoints {
		if ep.Network == keep.Key {
			eps = append(eps, ep)
		}
	}
	s.Endpoints = eps
	var drift []string
	for _, d := range s.Drift {
		if strings.Contains(d, fmt.Sprintf("vni %d", keep.VNI)) {
			drift = append(drift, d)
		}
	}
	s.Drift = append([]string{}, drift...)
	return nil
}

func dockerIDMatch(hosts map[string]string, sel string) bool {
	if len(sel) < 12 {
		return false
	}
	for _, id := range hosts {
		if strings.HasPrefix(id, sel) {
			return true
		}
	}
	return false
}
