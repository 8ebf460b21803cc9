package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vxnet/vxnet/store"
)

// ReleaseHost drops every lease held by a host that stopped heartbeating,
// so its addresses can be reused. It returns how many it dropped.
func (m *IPAM) ReleaseHost(ctx context.Context, host string) (int, error) {
	kvs, _, err := m.o.Store.List(ctx, addrsPrefix)
	if err != nil {
		return 0, fmt.Errorf("release leases of host %q: %w", host, err)
	}
	n := 0
	for _, kv := range kvs {
		var l Lease
		if err := store.Decode(kv, &l); err != nil || l.Host != host {
			continue
		}
		err := m.o.Store.DeleteCAS(ctx, kv.Key, kv.ModifyIndex)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return n, fmt.Errorf("release lease %q of host %q: %w", kv.Key, host, err)
		}
		n++
	}
	return n, nil
}

// Reclaim leases a of subnet again for this host: a returning host's
// running containers keep their addresses. It fails, naming the holder,
// when another host took the address meanwhile.
func (m *IPAM) Reclaim(ctx context.Context, subnet netip.Prefix, a netip.Addr) error {
	key := addrKey(PoolID(subnet), a)
	err := store.CreateJSON(ctx, m.o.Store, key, Lease{Host: m.o.HostID})
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	l, _, err := store.GetJSON[Lease](ctx, m.o.Store, key)
	if err != nil {
		return fmt.Errorf("reclaim %s: %w", a, err)
	}
	if l.Host != m.o.HostID {
		return fmt.Errorf("address %s of this host's container is now leased by host %q: duplicate address", a, l.Host)
	}
	return nil
}
