package driver

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Pools is what the driver needs of vxnet's IPAM (ipam.IPAM), for the
// networks whose pools come from it.
type Pools interface {
	// OwnsAddressSpace tells whether an address space in Docker's IPAM
	// data is the IPAM's: the network's pool came from it.
	OwnsAddressSpace(space string) bool
	// SetupDone tells the IPAM that this host's network on subnet exists:
	// preferred addresses are static IPs from now on, no longer
	// --aux-address reservations.
	SetupDone(ctx context.Context, subnet netip.Prefix) error
	// PoolState tells whether this host holds subnet's pool and whether
	// the pool is still in setup. With it, a standalone host finds
	// networks Docker removed while their DeleteNetwork was lost (see
	// orphan.go).
	PoolState(ctx context.Context, subnet netip.Prefix) (member, setup bool, err error)
	// PoolMembers is PoolState's member for each of subnets, in one
	// store request for all of them (reconcile asks it every round for
	// every network of the host).
	PoolMembers(ctx context.Context, subnets []netip.Prefix) (map[netip.Prefix]bool, error)
	// Reclaim re-leases an address of this host's endpoint after other
	// hosts purged it while this host was gone.
	Reclaim(ctx context.Context, subnet netip.Prefix, a netip.Addr) error
}

// ownsSpace tells whether space is the IPAM's; with no IPAM, none is.
func (d *Driver) ownsSpace(space string) bool {
	return d.o.Pools != nil && d.o.Pools.OwnsAddressSpace(space)
}

// LocalPools returns the IPAM pool IDs of the subnets of this host's
// networks: the pools the host uses (see ipam.IPAM.ReleaseUnfinished).
func (d *Driver) LocalPools(ctx context.Context) (map[string]bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	kvs, _, err := d.o.Store.List(ctx, keys.HostNetworks(d.o.HostID))
	if err != nil {
		return nil, fmt.Errorf("list networks of host %q: %w", d.o.HostID, err)
	}
	clusterKeys := make([]string, len(kvs))
	for i, kv := range kvs {
		var ref LocalRef
		if err := store.Decode(kv, &ref); err != nil {
			return nil, err
		}
		clusterKeys[i] = keys.Network(ref.Network)
	}
	// Through netCache.records, all in one index check: asked every
	// reconcile round (the IPAM's ReleaseLost), a Get of each record was
	// the largest idle read left at 50 hosts (make scale of 20:26 UTC),
	// and a check of each one a request per network per round.
	recs, err := d.nets.records.GetAll(ctx, d.o.Store, clusterKeys)
	if err != nil {
		return nil, fmt.Errorf("read the networks of host %q: %w", d.o.HostID, err)
	}
	pools := map[string]bool{}
	for _, c := range recs {
		for _, s := range c.Value.Subnets {
			pools[keys.PoolID(s)] = true
		}
	}
	return pools, nil
}
