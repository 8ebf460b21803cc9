// Package driver is vxnet's NetworkDriver: it turns Docker's callbacks into
// cluster records in the store and kernel objects through the data plane.
//
// Its records in the store, and their keys, are listed in package
// store/keys: networks, VNIs, endpoints, MACs, subnet claims and each
// host's references and copies.
//
// Invariants: a VNI belongs to at most one network (create-only CAS on
// vnis/<vni>); a MAC to at most one endpoint of a network (create-only CAS
// on macs/<key>/<mac>); subnets of different networks never overlap (a
// CAS on subnets decides between creates racing on several hosts); the
// kernel holds, per network this host uses, one namespace with br0 +
// vxlan0, and one veth per joined local endpoint; Reconcile makes
// the kernel match the store, so a restart or drift repair replays one path.
// Network create/delete take mu exclusively, endpoint callbacks share it.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Dataplane is the kernel side the driver programs (dataplane.Plane).
type Dataplane interface {
	EnsureNetwork(dataplane.NetworkConfig) error
	DeleteNetwork(vni uint32) error
	Networks() ([]uint32, error)
	EnsureEndpoint(dataplane.EndpointConfig) (string, error)
	DeleteEndpoint(vni uint32, id string) error
	Endpoints(vni uint32) ([]string, error)
	InUse(vni uint32) ([]string, error)
	SetPeers(vni uint32, peers []dataplane.Peer) error
	Publish(dataplane.PublishConfig) ([]dataplane.PortBinding, error)
	Unpublish(vni uint32, endpoint string) error
	PrunePublished(vni uint32) error
}

// Options configure a Driver.
type Options struct {
	Store     store.Store
	Plane     Dataplane
	HostID    string     // this host's identity in the cluster
	VTEP      netip.Addr // advertise address: VXLAN source and peers' destination
	Port      int        // VXLAN UDP port
	MTU       int        // default MTU of networks without -o mtu
	Scope     scope.Scope
	Log       *logrus.Entry
	VNIOffset uint32 // first VNI handed out automatically
	// Pools is vxnet's IPAM (ipam.IPAM); nil when there is none, and
	// every network's pools are then taken as Docker's own.
	Pools Pools
	// ObserveLag, if set, is told for each other host's endpoint, once,
	// how long after its record was written this host first programmed
	// it (by the two hosts' clocks).
	ObserveLag func(time.Duration)
	// Admit, if set, may refuse an endpoint before anything is written
	// (swarm.Guard.Admit: tasks of VIP-mode services).
	Admit func(ctx context.Context, dockerNet string, addrs []netip.Prefix) error
	// MultiHost: the store is shared by several hosts (Consul). Docker's
	// default IPAM then hands out the same addresses on every host, so a
	// local-scope network must use vxnet's IPAM.
	MultiHost bool
	// OnEndpoints, if set, is given the endpoint records of a network as
	// the peer watcher programs them (gone hosts left out), and nil when
	// the network's watcher stops (names.Table).
	OnEndpoints func(network string, eps []Endpoint)
	// SweepEvery is how often reconcile searches the whole cluster for
	// this host's leftovers besides at start and after each network create
	// or remove (sweep.go); 0 every round.
	SweepEvery time.Duration
}

// DefaultVNIOffset is the first VNI vxnet hands out, 0x100000: Docker's
// overlay (libnetwork ovmanager, used by swarm) counts up from 4096, and its
// ingress network takes 4096 on UDP 4789 on every swarm node, so vxnet's
// default range starts a million VNIs above it. A VNI the kernel refuses
// all the same is skipped (vniretry.go).
const DefaultVNIOffset = 0x100000

// Driver implements the NetworkDriver callbacks.
type Driver struct {
	o  Options
	mu sync.RWMutex

	life     context.Context // ends at Close: the peer goroutines' parent
	stop     context.CancelFunc
	wmu      sync.Mutex
	watchers map[string]*watcher // cluster network key → peer goroutine
	logs     logWatch            // the one watch of their change logs (logwatch.go)

	gmu  sync.RWMutex
	gone map[string]bool // hosts whose entries are left out (SetGone)

	nets  netCache       // Docker network ID → cluster network, for lookup
	fresh freshEndpoints // records CreateEndpoint wrote, for their Join (fresh.go)
	sweep sweepClock     // when reconcile searches for leftovers (sweep.go)
}

// Network is the cluster record of one vxnet network.
type Network struct {
	Key      string            `json:"key"`
	VNI      uint32            `json:"vni"`
	Subnets  []netip.Prefix    `json:"subnets"`
	Gateways []netip.Prefix    `json:"gateways,omitempty"`
	Options  NetworkOptions    `json:"options"`
	Hosts    map[string]string `json:"hosts"` // host ID → that host's Docker network ID
}

// VNIRecord is the value of vnis/<vni>.
type VNIRecord struct {
	Network string `json:"network"`
	// Host reserved the VNI; it alone may find the reservation stale (a
	// create killed between reserving the VNI and writing the network).
	Host string `json:"host,omitempty"`
}

// LocalRef is the value of hosts/<host>/networks/<docker id>.
type LocalRef struct {
	Network string `json:"network"`
	// OwnIPAM: the network's pools are vxnet's (Subnets.OwnIPAM).
	OwnIPAM bool `json:"ownIPAM,omitempty"`
}

// Endpoint is the cluster record of one container interface.
type Endpoint struct {
	ID        string         `json:"id"`
	Network   string         `json:"network"` // cluster network key
	DockerNet string         `json:"dockerNetwork"`
	Host      string         `json:"host"`
	VTEP      netip.Addr     `json:"vtep"`
	Addrs     []netip.Prefix `json:"addrs"`
	MAC       string         `json:"mac"`
	// Created is when the endpoint's host wrote the record, by its clock:
	// other hosts measure how long it took to reach them (ObserveLag).
	Created time.Time `json:"created,omitzero"`
	// Names are the container's name and aliases on the network, written
	// by the endpoint's host from its Docker API (SetNames).
	Names []string `json:"names,omitempty"`
}

// New returns a Driver. Call Reconcile before serving.
func New(o Options) (*Driver, error) {
	if o.Store == nil || o.Plane == nil || o.HostID == "" {
		return nil, errors.New("driver: store, data plane and host ID are required")
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if o.VNIOffset == 0 {
		o.VNIOffset = DefaultVNIOffset
	}
	if o.Scope == "" {
		o.Scope = scope.Local
	}
	life, stop := context.WithCancel(context.Background())
	return &Driver{o: o, life: life, stop: stop, watchers: map[string]*watcher{}, sweep: sweepClock{every: o.SweepEvery}}, nil
}

// Close stops the driver's goroutines. Kernel state stays, so containers
// keep their traffic while the plugin is down.
func (d *Driver) Close() {
	d.stop()
	d.StopWatches()
}

// lookup finds the cluster network behind this host's Docker network ID,
// from the cache when an earlier call read it (netcache.go); the caller
// holds mu. The network returned is shared: do not change it.
func (d *Driver) lookup(ctx context.Context, dockerID string) (*Network, error) {
	if err := validID("network", dockerID); err != nil {
		return nil, err
	}
	if n, ok := d.nets.get(dockerID); ok {
		return n, nil
	}
	ref, _, err := store.GetJSON[LocalRef](ctx, d.o.Store, keys.HostNetwork(d.o.HostID, dockerID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errkind.Errorf(errkind.NotFound, "network %q is not a vxnet network on this host", dockerID)
	}
	if err != nil {
		return nil, fmt.Errorf("look up network %q: %w", dockerID, err)
	}
	n, err := d.networkOf(ctx, dockerID, ref)
	if err != nil {
		return nil, err
	}
	d.nets.put(dockerID, n)
	return n, nil
}

// networkOf reads the cluster network of this host's Docker network
// dockerID, whose record ref the caller has read already; a missing
// cluster record wraps store.ErrNotFound.
func (d *Driver) networkOf(ctx context.Context, dockerID string, ref *LocalRef) (*Network, error) {
	n, _, err := store.GetJSON[Network](ctx, d.o.Store, keys.Network(ref.Network))
	if err != nil {
		return nil, fmt.Errorf("read network %q (%s): %w", dockerID, ref.Network, err)
	}
	return n, nil
}

// mtu is the MTU this host uses for n.
func (d *Driver) mtu(n *Network) int {
	if n.Options.MTU != 0 {
		return n.Options.MTU
	}
	return d.o.MTU
}

func (d *Driver) netConfig(n *Network) dataplane.NetworkConfig {
	return dataplane.NetworkConfig{
		VNI:       n.VNI,
		Port:      d.o.Port,
		LocalIP:   net.IP(d.o.VTEP.AsSlice()),
		MTU:       d.mtu(n),
		Addresses: n.Gateways,
		Egress:    n.Options.OwnEgress(),
	}
}

// gateway4 is the network's IPv4 gateway address, if it has one.
func gateway4(n *Network) (netip.Addr, bool) {
	for _, g := range n.Gateways {
		if g.Addr().Is4() {
			return g.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// validID accepts Docker's IDs: 12 to 64 lowercase hex characters. A
// network ID may also be a swarm object ID (25 characters of base 36):
// a swarm network has it on the manager (AllocateNetwork) and on every
// node (CreateNetwork and the calls after).
func validID(what, id string) error {
	if what == "network" && swarmID(id) {
		return nil
	}
	if len(id) < 12 || len(id) > 64 {
		return errkind.Errorf(errkind.BadRequest, "bad %s ID %q: want 12 to 64 hex characters", what, id)
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return errkind.Errorf(errkind.BadRequest, "bad %s ID %q: want 12 to 64 hex characters", what, id)
		}
	}
	return nil
}

// swarmID tells whether id is a swarmkit identity.NewID(): 25 characters
// of [0-9a-z].
func swarmID(id string) bool {
	if len(id) != 25 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func (d *Driver) logNet(n *Network) *logrus.Entry {
	return d.o.Log.WithFields(logrus.Fields{"network": n.Key, "vni": n.VNI})
}
