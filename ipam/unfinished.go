package ipam

import (
	"context"
	"fmt"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// ReleaseUnfinished drops this host from the pools it requested for a
// network it never created (still in Setup) and that no network of the
// host uses (inUse): what a plugin killed during RequestPool leaves. Docker
// takes the create as failed and never releases the pool, and the
// membership would refuse the subnet on this host for good ("already used
// by another vxnet network on this host") and keep the pool alive. Call it
// at start, before serving: a create Docker was in the middle of has failed
// with the plugin, so a pool still in Setup is no one's. Global scope keeps
// every pool (the swarm allocator requests pools without networks). In
// both scopes it drops this host's subnet claims that no pool membership
// backs (dropStaleClaims). It returns the pools released.
func (m *IPAM) ReleaseUnfinished(ctx context.Context, inUse func(poolID string) bool) ([]string, error) {
	if err := m.dropStaleClaims(ctx); err != nil {
		return nil, err
	}
	if m.global() {
		return nil, nil
	}
	kvs, _, err := m.o.Store.List(ctx, keys.Pools)
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	var released []string
	for _, kv := range kvs {
		id := keys.Last(kv.Key)
		var p Pool
		if err := store.Decode(kv, &p); err != nil || !p.Hosts[m.o.HostID] || !p.Setup[m.o.HostID] || inUse(id) {
			continue
		}
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
			return released, fmt.Errorf("release unfinished pool %q: %w", id, err)
		}
		m.o.Log.WithFields(logrus.Fields{"pool": id, "host": m.o.HostID}).Warn("released a pool requested for a network that was never created")
		released = append(released, id)
	}
	return released, nil
}

// ReleaseLost drops this host from the pools it holds, past their setup,
// that no network of the host uses any more: a ReleasePool whose call the
// plugin was killed in before it journaled it, which dockerd resends with
// an empty body after the restart and then forgets (seen in the crash
// suite). Docker releases a pool before it deletes the network, and
// RequestPool keeps a pool in Setup until its network exists, so no live
// network's pool matches. The pools are listed before inUse is asked, so a
// create finishing meanwhile (its network recorded before its setup ends)
// is in inUse. Local scope only, as ReleaseUnfinished. It returns the
// pools released.
func (m *IPAM) ReleaseLost(ctx context.Context, inUse func(context.Context) (map[string]bool, error)) ([]string, error) {
	if m.global() {
		return nil, nil
	}
	pools, err := m.pools.List(ctx, m.o.Store, keys.Pools)
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	var held []string
	for _, c := range pools {
		if p := c.Value; p.Hosts[m.o.HostID] && !p.Setup[m.o.HostID] {
			held = append(held, keys.Last(c.Key))
		}
	}
	if len(held) == 0 {
		return nil, nil
	}
	used, err := inUse(ctx)
	if err != nil {
		return nil, err
	}
	var released []string
	for _, id := range held {
		if used[id] {
			continue
		}
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
			return released, fmt.Errorf("release lost pool %q: %w", id, err)
		}
		m.o.Log.WithFields(logrus.Fields{"pool": id, "host": m.o.HostID}).Warn("released a pool no network of this host uses (its ReleasePool was lost)")
		released = append(released, id)
	}
	return released, nil
}
