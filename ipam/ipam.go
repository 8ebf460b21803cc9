// Package ipam is vxnet's IpamDriver: cluster-wide address pools and
// addresses kept in the store, so every host hands out addresses from the
// same pool without duplicates.
//
// Store layout (keys relative to the store's own prefix):
//
//	ipam/pools/<poolID>            Pool (JSON): subnet, range, gateway, hosts using it
//	ipam/addrs/<poolID>/<address>  Lease (JSON): which host holds the address
//
// Invariants: an address is in use exactly when its lease key exists; a
// lease is taken with a create-only CAS, so two hosts racing for the same
// address cannot both win. Pools are identified by their subnet, so the
// same `docker network create --subnet` on several hosts meets one pool;
// overlapping but different subnets are refused. The gateway is the same on
// every host and is never leased to a container.
package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
)

const (
	poolsPrefix = "ipam/pools/"
	addrsPrefix = "ipam/addrs/"

	// Docker's RequestAddress option naming what the address is for.
	requestAddressType = "RequestAddressType"
	gatewayType        = "com.docker.network.gateway"

	localSpace  = "vxnet-local"
	globalSpace = "vxnet-global"
)

// Options configure an IPAM.
type Options struct {
	Store  store.Store
	HostID string // this host's identity in the cluster
	// Scope is the driver's scope: "global" (swarm) changes two answers,
	// see swarm.go; anything else is standalone ("local").
	Scope string
	Log   *logrus.Entry
}

// IPAM implements the IpamDriver callbacks.
type IPAM struct {
	o Options
	// cursor remembers, per pool, where the next search for a free address
	// starts, so a released address is not handed out again at once.
	mu     sync.Mutex
	cursor map[string]netip.Addr
}

// Lease is the value of an address key.
type Lease struct {
	Host string `json:"host"`
	// Aux marks an --aux-address reservation: shared by all hosts of the
	// pool, it goes with the pool.
	Aux bool `json:"aux,omitempty"`
}

// New returns an IPAM on the given store.
func New(o Options) *IPAM {
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &IPAM{o: o, cursor: map[string]netip.Addr{}}
}

func poolKey(id string) string { return poolsPrefix + id }
func addrKey(id string, a netip.Addr) string {
	return addrsPrefix + id + "/" + a.String()
}

// OwnsAddressSpace tells whether space is one of vxnet's address spaces:
// a network whose IPAM data names it got its pool from this IPAM.
func OwnsAddressSpace(space string) bool {
	return space == localSpace || space == globalSpace
}

// GetCapabilities answers IpamDriver.GetCapabilities.
func (m *IPAM) GetCapabilities(context.Context) (*ipamapi.CapabilitiesResponse, error) {
	return &ipamapi.CapabilitiesResponse{RequiresMACAddress: false}, nil
}

// GetDefaultAddressSpaces answers IpamDriver.GetDefaultAddressSpaces.
func (m *IPAM) GetDefaultAddressSpaces(context.Context) (*ipamapi.AddressSpacesResponse, error) {
	return &ipamapi.AddressSpacesResponse{LocalDefaultAddressSpace: localSpace, GlobalDefaultAddressSpace: globalSpace}, nil
}

// RequestPool registers this host as a user of the pool for the requested
// subnet, creating the pool if this is the first host.
func (m *IPAM) RequestPool(ctx context.Context, r *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	want, err := parsePoolRequest(r)
	if err != nil {
		return nil, err
	}
	id := PoolID(want.Subnet)
	if err := m.checkOverlap(ctx, want.Subnet); err != nil {
		return nil, err
	}
	_, err = store.Update(ctx, m.o.Store, poolKey(id), func(cur *Pool) (*Pool, error) {
		if cur == nil {
			p := *want
			p.Hosts = map[string]bool{m.o.HostID: true}
			p.Setup = map[string]bool{m.o.HostID: true}
			return &p, nil
		}
		if cur.Range != want.Range {
			return nil, fmt.Errorf("subnet %s is a vxnet pool with ip-range %q, not %q", cur.Subnet, prefixOrNone(cur.Range), prefixOrNone(want.Range))
		}
		if cur.Hosts[m.o.HostID] {
			if !m.global() {
				return nil, fmt.Errorf("subnet %s is already used by another vxnet network on this host", cur.Subnet)
			}
			return cur.withRef(m.o.HostID, +1), nil
		}
		next := *cur
		next.Hosts = copyAdd(cur.Hosts, m.o.HostID)
		next.Setup = copyAdd(cur.Setup, m.o.HostID)
		return &next, nil
	})
	if err != nil {
		return nil, fmt.Errorf("request pool %s: %w", want.Subnet, err)
	}
	m.o.Log.WithFields(logrus.Fields{"pool": id, "host": m.o.HostID}).Info("pool requested")
	return &ipamapi.RequestPoolResponse{PoolID: id, Pool: want.Subnet.String(), Data: map[string]string{}}, nil
}

func prefixOrNone(p netip.Prefix) string {
	if !p.IsValid() {
		return "none"
	}
	return p.String()
}

func copyAdd(m map[string]bool, k string) map[string]bool {
	out := make(map[string]bool, len(m)+1)
	for h := range m {
		out[h] = true
	}
	out[k] = true
	return out
}

// parsePoolRequest validates a RequestPool request into the Pool it asks for.
func parsePoolRequest(r *ipamapi.RequestPoolRequest) (*Pool, error) {
	for k := range r.Options {
		if !strings.HasPrefix(k, "com.docker.") {
			return nil, fmt.Errorf("unknown IPAM option %q: vxnet IPAM takes no --ipam-opt options", k)
		}
	}
	if r.Pool == "" {
		return nil, errors.New("vxnet IPAM needs an explicit subnet: use --subnet (and --ipv6 with an IPv6 --subnet)")
	}
	subnet, err := parseSubnet("subnet", r.Pool)
	if err != nil {
		return nil, err
	}
	if subnet.Addr().Is6() != r.V6 {
		return nil, fmt.Errorf("subnet %s is not an IPv%d subnet", subnet, map[bool]int{false: 4, true: 6}[r.V6])
	}
	if max := subnet.Addr().BitLen() - 2; subnet.Bits() > max {
		return nil, fmt.Errorf("subnet %s is too small: need at least a /%d", subnet, max)
	}
	p := &Pool{Subnet: subnet}
	if r.SubPool != "" {
		if p.Range, err = parseSubnet("ip-range", r.SubPool); err != nil {
			return nil, err
		}
		if !subnet.Contains(p.Range.Addr()) || p.Range.Bits() < subnet.Bits() {
			return nil, fmt.Errorf("ip-range %s is not inside subnet %s", p.Range, subnet)
		}
	}
	return p, nil
}

// checkOverlap refuses a subnet that overlaps a different existing pool.
func (m *IPAM) checkOverlap(ctx context.Context, subnet netip.Prefix) error {
	kvs, _, err := m.o.Store.List(ctx, poolsPrefix)
	if err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	for _, kv := range kvs {
		other, err := ParsePoolID(strings.TrimPrefix(kv.Key, poolsPrefix))
		if err != nil {
			continue // not a pool key
		}
		if other != subnet && overlaps(other, subnet) {
			return fmt.Errorf("subnet %s overlaps vxnet pool %s", subnet, other)
		}
	}
	return nil
}

// ReleasePool removes this host from the pool's users; the last user
// deletes the pool and every lease in it. Unknown pools are not an error.
func (m *IPAM) ReleasePool(ctx context.Context, r *ipamapi.ReleasePoolRequest) error {
	if _, err := ParsePoolID(r.PoolID); err != nil {
		return err
	}
	last := false
	_, err := store.Update(ctx, m.o.Store, poolKey(r.PoolID), func(cur *Pool) (*Pool, error) {
		last = false
		if cur == nil || !cur.Hosts[m.o.HostID] {
			return cur, nil
		}
		if cur.Refs[m.o.HostID] > 0 {
			return cur.withRef(m.o.HostID, -1), nil
		}
		next := *cur
		next.Hosts, next.Setup = map[string]bool{}, nil
		for h := range cur.Hosts {
			if h != m.o.HostID {
				next.Hosts[h] = true
			}
		}
		for h := range cur.Setup {
			if h != m.o.HostID {
				if next.Setup == nil {
					next.Setup = map[string]bool{}
				}
				next.Setup[h] = true
			}
		}
		if len(next.Hosts) == 0 {
			last = true
			return nil, nil
		}
		return &next, nil
	})
	if err != nil {
		return fmt.Errorf("release pool %q: %w", r.PoolID, err)
	}
	if last {
		if err := m.deleteLeases(ctx, r.PoolID); err != nil {
			return err
		}
	}
	m.o.Log.WithFields(logrus.Fields{"pool": r.PoolID, "last": last}).Info("pool released")
	return nil
}

func (m *IPAM) deleteLeases(ctx context.Context, id string) error {
	kvs, _, err := m.o.Store.List(ctx, addrsPrefix+id+"/")
	if err != nil {
		return fmt.Errorf("list leases of pool %q: %w", id, err)
	}
	for _, kv := range kvs {
		if err := m.o.Store.Delete(ctx, kv.Key); err != nil {
			return fmt.Errorf("delete lease %q: %w", kv.Key, err)
		}
	}
	return nil
}

// Leases returns the leased addresses of a pool.
func (m *IPAM) Leases(ctx context.Context, id string) (map[netip.Addr]Lease, error) {
	kvs, _, err := m.o.Store.List(ctx, addrsPrefix+id+"/")
	if err != nil {
		return nil, fmt.Errorf("list leases of pool %q: %w", id, err)
	}
	out := make(map[netip.Addr]Lease, len(kvs))
	for _, kv := range kvs {
		a, err := netip.ParseAddr(kv.Key[strings.LastIndexByte(kv.Key, '/')+1:])
		if err != nil {
			continue // not a lease key
		}
		var l Lease
		if err := json.Unmarshal(kv.Value, &l); err != nil {
			return nil, fmt.Errorf("decode lease %q: %w", kv.Key, err)
		}
		out[a] = l
	}
	return out, nil
}

// sortedAddrs is for messages and tests.
func sortedAddrs(m map[netip.Addr]Lease) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
