package ipam

import (
	"context"

	"github.com/vxnet/vxnet/store/keys"
)

// leasePool is the pool record a RequestAddress leases from (change 21,
// docs/scaling.md): the copy reconcile keeps of this host's pools
// (m.pools, PoolMembers every round) when one index check finds it
// unchanged, else the record read consistently, as before.
//
// Why: every endpoint add read its pool's record consistently (a quorum
// round on Consul) though the record rarely changes once the network
// exists, and it grows with the pool's hosts; at 200 simulated hosts that
// read was the call that ran past its deadline.
//
// Why a copy is safe: no address is handed out twice because a lease is
// taken by a create-only write (the store decides, whatever this host
// read); of the pool record the lease needs the subnet (the pool's key),
// the range and the gateway (fixed while the pool exists: a pool removed
// and requested again has a new index, and is removed only once every
// host, this one included, released it) and this host's setup flag (only
// this host's own SetupDone clears it). The index check is answered
// without a quorum round, so it may be a moment stale during a change of
// leader: the copy is used only where such staleness changes nothing,
// this host a settled member (it requested the pool and created its
// network: setup over) and the gateway fixed. Otherwise, and for gateway
// requests, the record is read consistently, but in a network create
// (the record RequestPool wrote, held.go).
func (m *IPAM) leasePool(ctx context.Context, id string, gateway bool) (*Pool, error) {
	if _, err := ParsePoolID(id); err != nil {
		return nil, err
	}
	if gateway {
		// In a network create, right after RequestPool: the record it
		// wrote, which the gateway's update CASes from (held.go).
		if p, ok := m.heldPool(id); ok {
			return p, nil
		}
	} else {
		c, err := m.pools.Get(ctx, m.o.Store, keys.Pool(id))
		if err == nil && m.settled(c.Value) {
			return c.Value, nil
		}
	}
	return m.pool(ctx, id)
}

// settled tells a pool this host requested and created its network on,
// whose gateway is fixed: what a stale copy of it says is still true.
func (m *IPAM) settled(p *Pool) bool {
	return !p.removed() && p.Hosts[m.o.HostID] && !p.Setup[m.o.HostID] && p.Gateway.IsValid()
}
