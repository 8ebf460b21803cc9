package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// ForgetHost removes a host that is gone for good from the address state,
// for `vxnet host forget HOST`: it releases every lease the host holds,
// drops the host from every pool's memberships (users, setup, extra
// references) and from the subnet index, and removes the pools left
// without a user, leases first. It returns how many leases it released
// and how many pools it changed. Every write is a CAS, so it is safe to
// repeat and to run on several hosts at once; a second run finds nothing.
// A host cannot forget itself: its own networks would lose their pools.
func (m *IPAM) ForgetHost(ctx context.Context, host string) (leases, pools int, err error) {
	if host == "" {
		return 0, 0, errkind.New(errkind.BadRequest, "forget host: no host ID given")
	}
	if host == m.o.HostID {
		return 0, 0, errkind.Errorf(errkind.BadRequest, "forget host %q: that is this host's own ID; run it on another host", host)
	}
	if leases, err = m.releaseLeasesOf(ctx, host); err != nil {
		return leases, 0, err
	}
	kvs, _, err := m.o.Store.List(ctx, keys.Pools)
	if err != nil {
		return leases, 0, fmt.Errorf("forget host %q: list pools: %w", host, err)
	}
	for _, kv := range kvs {
		id := keys.Last(kv.Key)
		if _, err := ParsePoolID(id); err != nil {
			continue // not a pool key
		}
		changed := false
		_, err := m.updatePool(ctx, id, func(cur *Pool) (*Pool, error) {
			changed = cur != nil && cur.uses(host)
			if !changed {
				return cur, nil
			}
			return cur.without(host), nil
		})
		if err == nil {
			_, err = m.finishRemoval(ctx, id)
		}
		if err != nil {
			return leases, pools, fmt.Errorf("forget host %q: pool %q: %w", host, id, err)
		}
		if changed {
			pools++
		}
	}
	if err := m.dropClaims(ctx, host); err != nil {
		return leases, pools, fmt.Errorf("forget host %q: %w", host, err)
	}
	m.o.Log.WithFields(logrus.Fields{"host": host, "leases": leases, "pools": pools}).Warn("host forgotten")
	return leases, pools, nil
}

// releaseLeasesOf deletes host's leases, each with a CAS on the index
// listed: a lease is create-only, so a conflict means it was released and
// maybe taken again by someone else since, and it is left alone.
func (m *IPAM) releaseLeasesOf(ctx context.Context, host string) (int, error) {
	kvs, _, err := m.o.Store.List(ctx, keys.AllLeases)
	if err != nil {
		return 0, fmt.Errorf("release leases of host %q: %w", host, err)
	}
	n := 0
	for _, kv := range kvs {
		var l Lease
		if err := store.Decode(kv, &l); err != nil || l.Host != host || l.Aux {
			continue
		}
		err := m.o.Store.DeleteCAS(ctx, kv.Key, kv.ModifyIndex)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
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
	key := keys.Lease(keys.PoolID(subnet), a)
	err := store.CreateJSON(ctx, m.o.Store, key, newLease(m.o.HostID, false))
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	l, _, err := store.GetJSON[Lease](ctx, m.o.Store, key)
	if err != nil {
		return fmt.Errorf("reclaim %s: %w", a, err)
	}
	if l.Host != m.o.HostID {
		return errkind.Errorf(errkind.Conflict, "address %s of this host's container is now leased by host %q: duplicate address", a, l.Host)
	}
	return nil
}
