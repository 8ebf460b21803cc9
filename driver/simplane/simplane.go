// Package simplane is a data plane that programs nothing: it keeps in
// memory what the driver asked for (networks, endpoints, peer entries) and
// tells an observer of every peer set. `vxnet simulate` runs many host
// agents in one process on it, so everything above the kernel — store
// sync, liveness, watch handling, peer decisions — is the plugin's own
// code, measured against a real Consul.
//
// It satisfies driver.Dataplane. Every endpoint it holds counts as in use
// (a simulated container never leaves), so reconcile treats them as a
// running container's.
package simplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
)

// Observer is told of every SetPeers call, after it is recorded.
type Observer func(vni uint32, peers []dataplane.Peer, at time.Time)

// Plane is one simulated host's kernel.
type Plane struct {
	observe Observer

	mu       sync.Mutex
	networks map[uint32]*network
}

type network struct {
	cfg       dataplane.NetworkConfig
	endpoints map[string]dataplane.EndpointConfig
	peers     []dataplane.Peer
}

// New returns an empty plane; observe may be nil.
func New(observe Observer) *Plane {
	return &Plane{observe: observe, networks: map[uint32]*network{}}
}

// EnsureNetwork records the network (idempotent).
func (p *Plane) EnsureNetwork(c dataplane.NetworkConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.networks[c.VNI]; ok {
		n.cfg = c
		return nil
	}
	p.networks[c.VNI] = &network{cfg: c, endpoints: map[string]dataplane.EndpointConfig{}}
	return nil
}

// DeleteNetwork forgets the network; a missing one is no error.
func (p *Plane) DeleteNetwork(vni uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.networks, vni)
	return nil
}

// Networks lists the VNIs held.
func (p *Plane) Networks() ([]uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vnis := make([]uint32, 0, len(p.networks))
	for v := range p.networks {
		vnis = append(vnis, v)
	}
	slices.Sort(vnis)
	return vnis, nil
}

// EnsureEndpoint records the endpoint and returns a made-up interface name.
func (p *Plane) EnsureEndpoint(c dataplane.EndpointConfig) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.networks[c.VNI]
	if !ok {
		return "", fmt.Errorf("endpoint %q: no network with vni %d", c.ID, c.VNI)
	}
	n.endpoints[c.ID] = c
	return "sim" + c.ID[:min(len(c.ID), 8)], nil
}

// DeleteEndpoint forgets the endpoint; a missing one is no error.
func (p *Plane) DeleteEndpoint(vni uint32, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.networks[vni]; ok {
		delete(n.endpoints, id)
	}
	return nil
}

// Endpoints lists the endpoint IDs held on a network.
func (p *Plane) Endpoints(vni uint32) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.networks[vni]
	if !ok {
		return nil, nil
	}
	ids := make([]string, 0, len(n.endpoints))
	for id := range n.endpoints {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// InUse is Endpoints: a simulated container never leaves its endpoint.
func (p *Plane) InUse(vni uint32) ([]string, error) { return p.Endpoints(vni) }

// SetPeers records the network's peer entries and tells the observer.
func (p *Plane) SetPeers(vni uint32, peers []dataplane.Peer) error {
	p.mu.Lock()
	n, ok := p.networks[vni]
	if ok {
		n.peers = slices.Clone(peers)
	}
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("set peers: no network with vni %d", vni)
	}
	if p.observe != nil {
		p.observe(vni, peers, time.Now())
	}
	return nil
}

// VNIOf returns the VNI of the network whose gateway is in subnet.
func (p *Plane) VNIOf(subnet netip.Prefix) (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for vni, n := range p.networks {
		for _, a := range n.cfg.Addresses {
			if subnet.Contains(a.Addr()) {
				return vni, true
			}
		}
	}
	return 0, false
}

// Peers returns the peer entries last set on a network.
func (p *Plane) Peers(vni uint32) []dataplane.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.networks[vni]; ok {
		return slices.Clone(n.peers)
	}
	return nil
}

// Publish publishes nothing: simulated hosts carry no traffic. It answers
// with the bindings as asked.
func (p *Plane) Publish(c dataplane.PublishConfig) ([]dataplane.PortBinding, error) {
	return c.Ports, nil
}

// Unpublish has nothing to remove.
func (p *Plane) Unpublish(uint32, string) error { return nil }

// PrunePublished has nothing to remove.
func (p *Plane) PrunePublished(uint32) error { return nil }
