package driver

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vxnet/vxnet/driver/dataplane"
)

// fakePlane records the kernel objects the driver asks for.
type fakePlane struct {
	mu        sync.Mutex
	nets      map[uint32]dataplane.NetworkConfig
	eps       map[uint32]map[string]bool
	failNext  error // returned once by the next EnsureNetwork or EnsureEndpoint
	peers     map[uint32][]dataplane.Peer
	taken     map[string]bool                    // endpoint ID prefixes a container took (InUse)
	published map[string][]dataplane.PortBinding // endpoint ID → its published ports
}

func newFakePlane() *fakePlane {
	return &fakePlane{nets: map[uint32]dataplane.NetworkConfig{}, eps: map[uint32]map[string]bool{}, peers: map[uint32][]dataplane.Peer{}, taken: map[string]bool{}}
}

func (f *fakePlane) takeFailure() error {
	err := f.failNext
	f.failNext = nil
	return err
}

func (f *fakePlane) EnsureNetwork(c dataplane.NetworkConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return err
	}
	f.nets[c.VNI] = c
	if f.eps[c.VNI] == nil {
		f.eps[c.VNI] = map[string]bool{}
	}
	return nil
}

func (f *fakePlane) DeleteNetwork(vni uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, vni)
	delete(f.eps, vni)
	return nil
}

func (f *fakePlane) Networks() ([]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.nets)), nil
}

func (f *fakePlane) EnsureEndpoint(c dataplane.EndpointConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return "", err
	}
	if _, ok := f.nets[c.VNI]; !ok {
		return "", fmt.Errorf("vni %d: %w", c.VNI, dataplane.ErrNotFound)
	}
	f.eps[c.VNI][dataplane.ShortID(c.ID)] = true
	return "vxc" + dataplane.ShortID(c.ID), nil
}

func (f *fakePlane) DeleteEndpoint(vni uint32, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.eps[vni], dataplane.ShortID(id))
	return nil
}

func (f *fakePlane) Endpoints(vni uint32) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nets[vni]; !ok {
		return nil, fmt.Errorf("vni %d: %w", vni, dataplane.ErrNotFound)
	}
	return slices.Sorted(maps.Keys(f.eps[vni])), nil
}

func (f *fakePlane) InUse(vni uint32) ([]string, error) {
	ids, err := f.Endpoints(vni)
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(ids, func(id string) bool { return !f.taken[id] }), err
}

// take marks an endpoint's port as a running container's.
func (f *fakePlane) take(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.taken[dataplane.ShortID(id)] = true
}

func (f *fakePlane) SetPeers(vni uint32, peers []dataplane.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nets[vni]; !ok {
		return fmt.Errorf("vni %d: %w", vni, dataplane.ErrNotFound)
	}
	f.peers[vni] = peers
	return nil
}

func (f *fakePlane) peerIPs(vni uint32) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.peers[vni] {
		out = append(out, p.IP.String()+"@"+p.VTEP.String())
	}
	return strings.Join(out, ",")
}

func (f *fakePlane) endpointCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.eps {
		n += len(e)
	}
	return n
}

// fakePools stands in for vxnet's IPAM: it owns vxnet's address spaces,
// reports the pool state st (member by default, so no network is an
// orphan), and counts reclaimed addresses and the questions of pool
// state (PoolState and PoolMembers calls).
type fakePools struct {
	mu        sync.Mutex
	st        poolStates
	reclaimed int
	asked     int
}

func newFakePools() *fakePools { return &fakePools{st: poolStates{member: true}} }

func (f *fakePools) OwnsAddressSpace(space string) bool {
	return space == "vxnet-local" || space == "vxnet-global"
}
func (f *fakePools) SetupDone(context.Context, netip.Prefix) error { return nil }
func (f *fakePools) PoolState(context.Context, netip.Prefix) (bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return f.st.member, f.st.setup, nil
}
func (f *fakePools) PoolMembers(_ context.Context, subnets []netip.Prefix) (map[netip.Prefix]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	member := map[netip.Prefix]bool{}
	for _, s := range subnets {
		member[s] = f.st.member
	}
	return member, nil
}
func (f *fakePools) Reclaim(context.Context, netip.Prefix, netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reclaimed++
	return nil
}

// set changes the pool state the fake reports.
func (f *fakePools) set(st poolStates) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

// reclaims counts the addresses reclaimed so far.
func (f *fakePools) reclaims() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reclaimed
}

func (f *fakePlane) Publish(c dataplane.PublishConfig) ([]dataplane.PortBinding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure(); err != nil {
		return nil, err
	}
	if f.published == nil {
		f.published = map[string][]dataplane.PortBinding{}
	}
	f.published[c.Endpoint] = c.Ports
	return c.Ports, nil
}

func (f *fakePlane) Unpublish(_ uint32, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.published, id)
	return nil
}

func (f *fakePlane) PrunePublished(uint32) error { return nil }
