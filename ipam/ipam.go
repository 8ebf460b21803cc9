// Package ipam is vxnet's IpamDriver: cluster-wide address pools and
// addresses kept in the store, so every host hands out addresses from the
// same pool without duplicates.
//
// Its records in the store (the subnet index, pools and leases) and their
// keys are listed in package store/keys.
//
// Invariants:
//   - An address is in use exactly when its lease key exists; a lease is
//     taken with a create-only CAS, so two hosts racing for the same
//     address cannot both win.
//   - Every value this package writes carries a fresh random nonce. A
//     store whose answer was lost (a Consul leader election) takes a key
//     holding exactly the bytes it meant to write as its own write; the
//     nonce makes that true only for the request that wrote them, never
//     for another request of the same host writing the same lease.
//   - Pools are identified by their subnet, so the same `docker network
//     create --subnet` on several hosts meets one pool. Overlapping but
//     different subnets are refused, decided by one CAS on ipam/subnets:
//     a host claims its subnet there before it creates or joins the pool
//     and drops the claim only after it left the pool, so the hosts a
//     pool lists are always claimants of its subnet in the index.
//   - A lease is released only by the host holding it, with a CAS on the
//     index read (see ReleaseAddress); in global scope by any member host
//     of the pool (swarm.go).
//   - The last user of a pool first marks it removed (no hosts), then
//     deletes its leases, then the pool record: a crash in between leaves
//     a marked pool whose removal a replayed ReleasePool, a RequestPool
//     for the subnet or ForgetHost finishes, never leases without a pool.
//   - ForgetHost (the operator's `vxnet host forget`) takes a host gone for
//     good out of the address state: its leases, memberships and claims
//     go, and the pools only it used are removed as by a last user.
//   - The gateway is the same on every host and is never leased to a
//     container; neither are the network and IPv4 broadcast addresses.
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

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

const (
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
	// Scope is the driver's scope: scope.Global (swarm) changes three
	// answers, see swarm.go; anything else is standalone.
	Scope scope.Scope
	Log   *logrus.Entry
}

// IPAM implements the IpamDriver callbacks.
type IPAM struct {
	o Options
	// cursor remembers, per pool, where the next search for a free address
	// starts, so a released address is not handed out again at once.
	mu     sync.Mutex
	cursor map[string]netip.Addr
	// held is, by pool ID, the pool record as this host last read or
	// wrote it in a network create, which its next update starts from
	// (held.go).
	held map[string]store.Held[Pool]
	// pools caches the pool records PoolState and ReleaseLost read every
	// reconcile round, read again only when their store index moved
	// (store.Cache): they grow with the pool's hosts.
	pools store.Cache[Pool]
}

// Lease is the value of an address key.
type Lease struct {
	Host string `json:"host"`
	// Aux marks an --aux-address reservation: shared by all hosts of the
	// pool, it goes with the pool.
	Aux bool `json:"aux,omitempty"`
	// Nonce tells this request's write from another one of equal content
	// (see the package doc). Leases written before it existed have none.
	Nonce string `json:"nonce,omitempty"`
}

// New returns an IPAM on the given store.
func New(o Options) *IPAM {
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &IPAM{o: o, cursor: map[string]netip.Addr{}}
}

// newLease is a lease value of this request.
func newLease(host string, aux bool) Lease { return Lease{Host: host, Aux: aux, Nonce: store.Nonce()} }

// OwnsAddressSpace tells whether space is one of vxnet's address spaces:
// a network whose IPAM data names it got its pool from this IPAM.
func (m *IPAM) OwnsAddressSpace(space string) bool {
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
// subnet, creating the pool if this is the first host. The subnet is
// claimed in the subnet index first (one CAS decides between overlapping
// subnets requested on several hosts at once); a request that fails after
// its claim drops the claim again, so it leaves nothing behind.
func (m *IPAM) RequestPool(ctx context.Context, r *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	want, err := parsePoolRequest(r)
	if err != nil {
		return nil, err
	}
	id := keys.PoolID(want.Subnet)
	if err := m.checkOverlap(ctx, want.Subnet); err != nil {
		return nil, err
	}
	claimed, err := m.claim(ctx, want.Subnet)
	if err != nil {
		return nil, fmt.Errorf("request pool %s: %w", want.Subnet, err)
	}
	if err := m.joinPool(ctx, id, want); err != nil {
		if claimed {
			err = errors.Join(err, m.unclaim(ctx, id))
		}
		return nil, fmt.Errorf("request pool %s: %w", want.Subnet, err)
	}
	m.o.Log.WithFields(logrus.Fields{"pool": id, "host": m.o.HostID}).Info("pool requested")
	return &ipamapi.RequestPoolResponse{PoolID: id, Pool: want.Subnet.String(), Data: map[string]string{}}, nil
}

// joinPool creates the pool or adds this host to its users. A pool its
// last user marked removed is finished off first and created anew.
func (m *IPAM) joinPool(ctx context.Context, id string, want *Pool) error {
	read, err := m.finishRemoval(ctx, id)
	if err != nil {
		return err
	}
	m.hold(id, read) // the update starts from this read (held.go)
	_, err = m.updateHeldPool(ctx, id, func(cur *Pool) (*Pool, error) {
		if cur == nil || cur.removed() {
			p := *want
			p.Hosts = map[string]bool{m.o.HostID: true}
			p.Setup = map[string]bool{m.o.HostID: true}
			return &p, nil
		}
		if cur.Range != want.Range {
			return nil, errkind.Errorf(errkind.Conflict, "subnet %s is a vxnet pool with ip-range %q, not %q", cur.Subnet, prefixOrNone(cur.Range), prefixOrNone(want.Range))
		}
		if cur.Hosts[m.o.HostID] {
			if !m.global() {
				return nil, errkind.Errorf(errkind.Conflict, "subnet %s is already used by another vxnet network on this host", cur.Subnet)
			}
			return cur.withRef(m.o.HostID, +1), nil
		}
		next := *cur
		next.Hosts = copyAdd(cur.Hosts, m.o.HostID)
		next.Setup = copyAdd(cur.Setup, m.o.HostID)
		return &next, nil
	})
	return err
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
			return nil, errkind.Errorf(errkind.BadRequest, "unknown IPAM option %q: vxnet IPAM takes no --ipam-opt options", k)
		}
	}
	if r.Pool == "" {
		return nil, errkind.New(errkind.BadRequest, "vxnet IPAM needs an explicit subnet: use --subnet (and --ipv6 with an IPv6 --subnet)")
	}
	subnet, err := parseSubnet("subnet", r.Pool)
	if err != nil {
		return nil, err
	}
	if subnet.Addr().Is6() != r.V6 {
		return nil, errkind.Errorf(errkind.BadRequest, "subnet %s is not an IPv%d subnet", subnet, map[bool]int{false: 4, true: 6}[r.V6])
	}
	if max := subnet.Addr().BitLen() - 2; subnet.Bits() > max {
		return nil, errkind.Errorf(errkind.BadRequest, "subnet %s is too small: need at least a /%d", subnet, max)
	}
	p := &Pool{Subnet: subnet}
	if r.SubPool != "" {
		if p.Range, err = parseSubnet("ip-range", r.SubPool); err != nil {
			return nil, err
		}
		if !subnet.Contains(p.Range.Addr()) || p.Range.Bits() < subnet.Bits() {
			return nil, errkind.Errorf(errkind.BadRequest, "ip-range %s is not inside subnet %s", p.Range, subnet)
		}
	}
	return p, nil
}

// checkOverlap refuses a subnet that overlaps a different existing pool.
// The subnet index decides races (claim); this listing still catches the
// pools written before the index existed, which it does not list.
func (m *IPAM) checkOverlap(ctx context.Context, subnet netip.Prefix) error {
	// Keys alone: each pool record grows with its hosts, and every
	// RequestPool of every host listed them all.
	ks, err := store.ListKeys(ctx, m.o.Store, keys.Pools)
	if err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	for _, k := range ks {
		other, err := ParsePoolID(keys.Last(k))
		if err != nil {
			continue // not a pool key
		}
		if other != subnet && overlaps(other, subnet) {
			return errkind.Errorf(errkind.Conflict, "subnet %s overlaps vxnet pool %s", subnet, other)
		}
	}
	return nil
}

// ReleasePool removes this host from the pool's users; the last user
// removes the pool: it marks it removed, deletes its leases, then the
// record (finishRemoval). The host's claim on the subnet goes last. An
// unknown pool is not an error, and a replay finishes what a crash cut
// short.
func (m *IPAM) ReleasePool(ctx context.Context, r *ipamapi.ReleasePoolRequest) error {
	if _, err := ParsePoolID(r.PoolID); err != nil {
		return err
	}
	last := false
	_, err := m.updatePool(ctx, r.PoolID, func(cur *Pool) (*Pool, error) {
		last = false
		if cur == nil || !cur.Hosts[m.o.HostID] {
			return cur, nil
		}
		if cur.Refs[m.o.HostID] > 0 {
			return cur.withRef(m.o.HostID, -1), nil
		}
		next := cur.without(m.o.HostID)
		last = next.removed()
		return next, nil
	})
	m.release(r.PoolID)
	if err == nil {
		_, err = m.finishRemoval(ctx, r.PoolID)
	}
	if err == nil {
		err = m.unclaim(ctx, r.PoolID)
	}
	if err != nil {
		return fmt.Errorf("release pool %q: %w", r.PoolID, err)
	}
	m.o.Log.WithFields(logrus.Fields{"pool": r.PoolID, "last": last}).Info("pool released")
	return nil
}

// finishRemoval removes a pool marked removed (no users): first every
// lease written before the mark, then the record, with a CAS on the mark.
// A host that takes the pool over meanwhile (RequestPool) rewrote the
// record, so the CAS fails and its pool and its new leases stay. A pool
// that is absent or in use is left alone. It returns the record as it
// last read it: in use, or absent (a nil Value, index 0).
func (m *IPAM) finishRemoval(ctx context.Context, id string) (*store.Held[Pool], error) {
	r := store.Retrying(ctx)
	for r.Next() {
		kv, err := m.o.Store.Get(ctx, keys.Pool(id))
		if errors.Is(err, store.ErrNotFound) {
			return &store.Held[Pool]{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read pool %q: %w", id, err)
		}
		var p Pool
		if err := store.Decode(kv, &p); err != nil {
			return nil, err
		}
		if !p.removed() {
			return &store.Held[Pool]{Value: &p, Index: kv.ModifyIndex}, nil
		}
		if err := m.deleteLeases(ctx, id, kv.ModifyIndex); err != nil {
			return nil, err
		}
		err = m.o.Store.DeleteCAS(ctx, keys.Pool(id), kv.ModifyIndex)
		if err == nil {
			return &store.Held[Pool]{}, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("delete pool %q: %w", id, err)
		}
	}
	return nil, r.Err(fmt.Sprintf("remove pool %q (%q)", id, keys.Pool(id)))
}

// deleteLeases deletes the leases of pool id written before index, each
// with a CAS on the index listed.
func (m *IPAM) deleteLeases(ctx context.Context, id string, before uint64) error {
	kvs, _, err := m.o.Store.List(ctx, keys.Leases(id))
	if err != nil {
		return fmt.Errorf("list leases of pool %q: %w", id, err)
	}
	for _, kv := range kvs {
		if kv.ModifyIndex >= before {
			continue
		}
		err := m.o.Store.DeleteCAS(ctx, kv.Key, kv.ModifyIndex)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("delete lease %q: %w", kv.Key, err)
		}
	}
	return nil
}

// Leases returns the leased addresses of a pool.
func (m *IPAM) Leases(ctx context.Context, id string) (map[netip.Addr]Lease, error) {
	kvs, _, err := m.o.Store.List(ctx, keys.Leases(id))
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
