package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// RequestAddress leases an address: the gateway, a preferred (static)
// address, or the next free one.
func (m *IPAM) RequestAddress(ctx context.Context, r *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error) {
	pool, err := m.leasePool(ctx, r.PoolID, r.Options[requestAddressType] == gatewayType)
	if err != nil {
		return nil, err
	}
	var pref netip.Addr
	if r.Address != "" {
		if pref, err = netip.ParseAddr(r.Address); err != nil {
			return nil, errkind.Errorf(errkind.BadRequest, "bad address %q: %w", r.Address, err)
		}
		if !pool.Subnet.Contains(pref) {
			return nil, errkind.Errorf(errkind.BadRequest, "address %s is not in subnet %s", pref, pool.Subnet)
		}
	}
	var a netip.Addr
	switch {
	case r.Options[requestAddressType] == gatewayType:
		a, err = m.gateway(ctx, r.PoolID, pref)
	case pref.IsValid() && pool.Setup[m.o.HostID] && !m.global():
		a, err = m.leaseAux(ctx, r.PoolID, pool, pref)
	case pref.IsValid():
		a, err = m.leaseStatic(ctx, r.PoolID, pool, pref)
	default:
		a, err = m.leaseNext(ctx, r.PoolID, pool)
	}
	if err != nil {
		return nil, err
	}
	return &ipamapi.RequestAddressResponse{Address: netip.PrefixFrom(a, pool.Subnet.Bits()).String()}, nil
}

func (m *IPAM) pool(ctx context.Context, id string) (*Pool, error) {
	if _, err := ParsePoolID(id); err != nil {
		return nil, err
	}
	p, _, err := store.GetJSON[Pool](ctx, m.o.Store, keys.Pool(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errkind.Errorf(errkind.NotFound, "unknown pool ID %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read pool %q: %w", id, err)
	}
	if p.removed() {
		return nil, errkind.Errorf(errkind.Conflict, "pool %q is being removed: its last user released it", id)
	}
	return p, nil
}

// gateway fixes the pool's gateway on first request (the preferred one or
// the subnet's first host address) and returns it to every later request.
func (m *IPAM) gateway(ctx context.Context, id string, pref netip.Addr) (netip.Addr, error) {
	p, err := m.updateHeldPool(ctx, id, func(cur *Pool) (*Pool, error) {
		if cur == nil || cur.removed() {
			return nil, errkind.Errorf(errkind.NotFound, "unknown pool ID %q", id)
		}
		if what := cur.special(pref); what != "" {
			return nil, errkind.Errorf(errkind.BadRequest, "gateway %s is the %s of subnet %s", pref, what, cur.Subnet)
		}
		want := pref
		if !want.IsValid() {
			want = cur.Gateway
		}
		if !want.IsValid() {
			want = cur.defaultGateway()
		}
		if cur.Gateway.IsValid() && cur.Gateway != want {
			return nil, errkind.Errorf(errkind.Conflict, "gateway %s conflicts with gateway %s of vxnet pool %s", want, cur.Gateway, cur.Subnet)
		}
		if cur.Gateway == want {
			return cur, nil
		}
		next := *cur
		next.Gateway = want
		return &next, nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway of pool %q: %w", id, err)
	}
	return p.Gateway, nil
}

// leaseStatic takes exactly the preferred address or fails naming it.
func (m *IPAM) leaseStatic(ctx context.Context, id string, p *Pool, a netip.Addr) (netip.Addr, error) {
	if a == p.Gateway {
		return netip.Addr{}, errkind.Errorf(errkind.BadRequest, "address %s is the gateway of subnet %s", a, p.Subnet)
	}
	if what := p.special(a); what != "" {
		return netip.Addr{}, errkind.Errorf(errkind.BadRequest, "address %s is the %s of subnet %s: no container may have it", a, what, p.Subnet)
	}
	err := store.CreateJSON(ctx, m.o.Store, keys.Lease(id, a), newLease(m.o.HostID, false))
	if errors.Is(err, store.ErrConflict) && m.global() {
		m.log(id, a).Debug("address already leased: confirmed (global scope)")
		return a, nil
	}
	if errors.Is(err, store.ErrConflict) {
		return netip.Addr{}, errkind.Errorf(errkind.Conflict, "address %s is already in use in subnet %s", a, p.Subnet)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lease %s: %w", a, err)
	}
	m.log(id, a).Info("address leased")
	return a, nil
}

// leaseAux reserves an --aux-address for the pool: the first host's
// request takes it, the other hosts' requests for the same address share it.
// The network and broadcast addresses are accepted, unlike for --ip:
// Docker never hands an aux address to a container, and neither address
// is ever leased to one anyway, so reserving them changes nothing.
func (m *IPAM) leaseAux(ctx context.Context, id string, p *Pool, a netip.Addr) (netip.Addr, error) {
	err := store.CreateJSON(ctx, m.o.Store, keys.Lease(id, a), newLease("", true))
	if errors.Is(err, store.ErrConflict) {
		l, _, gerr := store.GetJSON[Lease](ctx, m.o.Store, keys.Lease(id, a))
		if gerr == nil && l.Aux {
			return a, nil
		}
		return netip.Addr{}, errkind.Errorf(errkind.Conflict, "aux address %s is already in use in subnet %s", a, p.Subnet)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reserve aux address %s: %w", a, err)
	}
	m.log(id, a).Info("aux address reserved")
	return a, nil
}

// SetupDone ends the pool's setup phase on this host: from now on a
// preferred address is a container's static --ip. The network driver calls
// it once its network on the subnet exists.
func (m *IPAM) SetupDone(ctx context.Context, subnet netip.Prefix) error {
	id := keys.PoolID(subnet)
	_, err := m.updateHeldPool(ctx, id, func(cur *Pool) (*Pool, error) {
		if cur == nil || !cur.Setup[m.o.HostID] {
			return cur, nil // another IPAM driver's subnet, or done already
		}
		next := *cur
		next.Setup = copyWithout(cur.Setup, m.o.HostID)
		return &next, nil
	})
	m.release(id) // the create is done (held.go)
	if err != nil {
		return fmt.Errorf("pool %s ready: %w", subnet, err)
	}
	return nil
}

// PoolState tells whether this host holds the pool of subnet (member) and
// whether it is still in the setup phase, requested but its network not
// created (setup). A missing pool is neither.
func (m *IPAM) PoolState(ctx context.Context, subnet netip.Prefix) (member, setup bool, err error) {
	c, err := m.pools.Get(ctx, m.o.Store, keys.Pool(keys.PoolID(subnet)))
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("read pool %s: %w", subnet, err)
	}
	return c.Value.Hosts[m.o.HostID], c.Value.Setup[m.o.HostID], nil
}

// PoolMembers is PoolState's member for each of subnets: one index check
// of every pool record cached (reading again only those changed), not one
// per subnet. A missing pool is no member.
func (m *IPAM) PoolMembers(ctx context.Context, subnets []netip.Prefix) (map[netip.Prefix]bool, error) {
	ks := make([]string, len(subnets))
	for i, s := range subnets {
		ks[i] = keys.Pool(keys.PoolID(s))
	}
	got, err := m.pools.GetAll(ctx, m.o.Store, ks)
	if err != nil {
		return nil, fmt.Errorf("read pools: %w", err)
	}
	member := make(map[netip.Prefix]bool, len(subnets))
	for i, s := range subnets {
		if c, ok := got[ks[i]]; ok {
			member[s] = c.Value.Hosts[m.o.HostID]
		}
	}
	return member, nil
}

// leaseNext takes the next free address after the pool's cursor. The
// lease key is create-only, so the store alone decides who gets an
// address; the listing of leases only picks a likely free candidate. Once
// this process has leased in the pool, the address at its cursor is
// claimed, the cursor moved past it at once, and tried first without a
// listing (one store round trip instead of a read of every lease of the
// pool, which grew with the pool's endpoints); a taken candidate, or no
// cursor yet, re-reads the leases and tries the next free one.
//
// Why the claim: requests made together on this host read the same
// cursor, all but one lost the create, and each loser listed every lease
// of the pool: with Docker starting 4 containers at a time, most
// addresses of a 1000-endpoint pool cost a listing of up to 1000 leases,
// CPU taken from the Joins running beside them (issue #13). A claimed
// address whose create fails is skipped until the cursor comes round.
func (m *IPAM) leaseNext(ctx context.Context, id string, p *Pool) (netip.Addr, error) {
	if a, ok := m.claimNext(id, p); ok {
		switch err := store.CreateJSON(ctx, m.o.Store, keys.Lease(id, a), newLease(m.o.HostID, false)); {
		case err == nil:
			m.log(id, a).Info("address leased")
			return a, nil
		case !errors.Is(err, store.ErrConflict):
			return netip.Addr{}, fmt.Errorf("lease %s: %w", a, err)
		}
	}
	r := store.Retrying(ctx)
	for r.Next() {
		taken, err := m.Leases(ctx, id)
		if err != nil {
			return netip.Addr{}, err
		}
		set := make(map[netip.Addr]bool, len(taken))
		for a := range taken {
			set[a] = true
		}
		a, ok := p.nextFree(m.startAt(id), set)
		if !ok {
			return netip.Addr{}, fmt.Errorf("no free address left in %s (%d leased)", prefixOrSubnet(p), len(taken))
		}
		err = store.CreateJSON(ctx, m.o.Store, keys.Lease(id, a), newLease(m.o.HostID, false))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return netip.Addr{}, fmt.Errorf("lease %s: %w", a, err)
		}
		return m.leased(id, a), nil
	}
	return netip.Addr{}, r.Err(fmt.Sprintf("lease an address under %q", keys.Leases(id)))
}

// claimNext returns the allocatable address at or after pool id's cursor and
// moves the cursor past it, so requests made together each get their own
// candidate; false when this process has not leased in the pool yet.
func (m *IPAM) claimNext(id string, p *Pool) (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start, ok := m.cursor[id]
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := p.nextFree(start, nil)
	if ok {
		m.cursor[id] = a.Next()
	}
	return a, ok
}

// leased moves the pool's cursor past a, just leased, and logs it.
func (m *IPAM) leased(id string, a netip.Addr) netip.Addr {
	m.advance(id, a)
	m.log(id, a).Info("address leased")
	return a
}

func prefixOrSubnet(p *Pool) netip.Prefix { return p.effectiveRange() }

func (m *IPAM) startAt(id string) netip.Addr {
	a, _ := m.cursorOf(id)
	return a
}

// cursorOf is the pool's cursor, if this process has leased in it.
func (m *IPAM) cursorOf(id string) (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.cursor[id]
	return a, ok
}

func (m *IPAM) advance(id string, a netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursor[id] = a.Next()
}

// ReleaseAddress drops a lease this host holds (in global scope: that a
// member host of the pool holds, see swarm.go), with a CAS on the index it
// read, so a lease another host took meanwhile is never deleted. Releasing
// the gateway, an --aux-address, an unknown address or an address of an
// unknown pool deletes nothing and is not an error: Docker releases the
// gateway on every host, and the pool owns the gateway and the aux
// addresses until its last host leaves.
//
// A lease another host holds is left alone and logged, not refused: the
// address is that host's container's (the release is a late journal
// replay, or Docker on this host held a stale address), so deleting it
// would hand one address out twice, and an error would only fail
// Docker's removal of the endpoint here and be replayed for ever.
func (m *IPAM) ReleaseAddress(ctx context.Context, r *ipamapi.ReleaseAddressRequest) error {
	if _, err := ParsePoolID(r.PoolID); err != nil {
		return err
	}
	a, err := netip.ParseAddr(r.Address)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", r.Address, err)
	}
	key := keys.Lease(r.PoolID, a)
	rt := store.Retrying(ctx)
	for rt.Next() {
		kv, err := m.o.Store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("release %s: %w", a, err)
		}
		var l Lease
		if err := store.Decode(kv, &l); err != nil {
			return fmt.Errorf("release %s: %w", a, err)
		}
		if l.Aux {
			return nil // it goes with the pool
		}
		mine, err := m.mayRelease(ctx, r.PoolID, l)
		if err != nil {
			return fmt.Errorf("release %s: %w", a, err)
		}
		if !mine {
			m.log(r.PoolID, a).WithField("holder", l.Host).Warn("release of an address another host holds: left to that host")
			return nil
		}
		err = m.o.Store.DeleteCAS(ctx, key, kv.ModifyIndex)
		if err == nil {
			m.log(r.PoolID, a).Info("address released")
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("release %s: %w", a, err)
		}
	}
	return rt.Err(fmt.Sprintf("release %s of pool %q (%q)", a, r.PoolID, key))
}

// mayRelease tells whether this host may release lease l of pool id: it
// holds it, or, in global scope, it is a user of the pool.
func (m *IPAM) mayRelease(ctx context.Context, id string, l Lease) (bool, error) {
	if l.Host == m.o.HostID || !m.global() {
		return l.Host == m.o.HostID, nil
	}
	p, _, err := store.GetJSON[Pool](ctx, m.o.Store, keys.Pool(id))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read pool %q: %w", id, err)
	}
	return p.uses(m.o.HostID), nil
}

func (m *IPAM) log(id string, a netip.Addr) *logrus.Entry {
	return m.o.Log.WithFields(logrus.Fields{"pool": id, "address": a.String()})
}
