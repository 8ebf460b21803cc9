package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// subnetIndex is the value of ipam/subnets: the subnet of every pool and
// the hosts claiming it. Overlap is checked and a claim added in one CAS
// of this one key, so of two hosts requesting overlapping subnets at once
// exactly one wins, while requests for the same subnet all win (they meet
// in one pool). A host claims its subnet before it joins the pool and
// drops the claim after it left, so a pool's users are always claimants.
// The key is deleted with its last claim.
type subnetIndex struct {
	Pools map[string]map[string]bool `json:"pools"` // pool ID → claiming hosts
	Nonce string                     `json:"nonce,omitempty"`
}

func (x *subnetIndex) stamp(n string) { x.Nonce = n }
func (p *Pool) stamp(n string)        { p.Nonce = n }

// claim adds this host's claim on subnet to the index, or fails naming
// both subnets when another pool's subnet overlaps it. It tells whether
// this call added the claim (the host had none).
func (m *IPAM) claim(ctx context.Context, subnet netip.Prefix) (added bool, err error) {
	id := keys.PoolID(subnet)
	var overlap error
	_, err = update(ctx, m.o.Store, keys.PoolIndex, func(cur *subnetIndex) (*subnetIndex, error) {
		added, overlap = false, nil
		if cur == nil {
			cur = &subnetIndex{}
		}
		for _, other := range sortedKeys(cur.Pools) {
			o, err := ParsePoolID(other)
			if err != nil || o == subnet || !overlaps(o, subnet) {
				continue
			}
			overlap = fmt.Errorf("subnet %s overlaps vxnet pool %s (claimed by hosts %s)", subnet, o, strings.Join(sortedKeys(cur.Pools[other]), ", "))
			return nil, overlap
		}
		if cur.Pools[id][m.o.HostID] {
			return cur, nil
		}
		added = true
		return cur.with(id, m.o.HostID, true), nil
	})
	switch {
	case overlap != nil:
		return false, overlap // nothing written
	case err != nil:
		// The write may have been applied all the same (a lost answer):
		// drop a claim the pool does not back.
		return false, errors.Join(fmt.Errorf("claim subnet %s: %w", subnet, err), m.unclaim(ctx, id))
	}
	return added, nil
}

// dropStaleClaims drops this host's claims on pools that do not list it as
// a user: what a plugin that died between claim and pool, or between pool
// and unclaim, leaves. Run it at start, before serving, when no request of
// this host can be between the two.
func (m *IPAM) dropStaleClaims(ctx context.Context) error {
	idx, _, err := store.GetJSON[subnetIndex](ctx, m.o.Store, keys.PoolIndex)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read subnet index: %w", err)
	}
	for _, id := range sortedKeys(idx.Pools) {
		if !idx.Pools[id][m.o.HostID] {
			continue
		}
		if err := m.unclaim(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// unclaim drops this host's claim on pool id unless the pool still lists
// the host as a user. Only this host changes its own membership, so the
// read of the pool stays true until the index is written.
func (m *IPAM) unclaim(ctx context.Context, id string) error {
	p, _, err := store.GetJSON[Pool](ctx, m.o.Store, keys.Pool(id))
	switch {
	case err == nil && p.Hosts[m.o.HostID]:
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("read pool %q: %w", id, err)
	}
	return m.dropClaims(ctx, m.o.HostID, id)
}

// dropClaims removes host's claims on the pools ids, or on every pool when
// ids is empty.
func (m *IPAM) dropClaims(ctx context.Context, host string, ids ...string) error {
	_, err := update(ctx, m.o.Store, keys.PoolIndex, func(cur *subnetIndex) (*subnetIndex, error) {
		if cur == nil {
			return nil, nil
		}
		next := cur
		for id, hosts := range cur.Pools {
			if hosts[host] && (len(ids) == 0 || contains(ids, id)) {
				next = next.with(id, host, false)
			}
		}
		if len(next.Pools) == 0 {
			return nil, nil // last claim: the key goes
		}
		return next, nil
	})
	if err != nil {
		return fmt.Errorf("drop subnet claims of host %q: %w", host, err)
	}
	return nil
}

// with returns a copy of x with host's claim on pool id set or dropped; a
// pool left without claims leaves the index.
func (x *subnetIndex) with(id, host string, claimed bool) *subnetIndex {
	next := &subnetIndex{Pools: make(map[string]map[string]bool, len(x.Pools)+1)}
	for k, v := range x.Pools {
		next.Pools[k] = v
	}
	if claimed {
		next.Pools[id] = copyAdd(x.Pools[id], host)
	} else if hosts := copyWithout(x.Pools[id], host); len(hosts) > 0 {
		next.Pools[id] = hosts
	} else {
		delete(next.Pools, id)
	}
	return next
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errNoChange stops store.Update without a write (see update).
var errNoChange = errors.New("no change")

// stamper is a pointer to a value that carries a nonce.
type stamper[T any] interface {
	*T
	stamp(nonce string)
}

// update is store.Update for the package's records: every value written
// carries a fresh nonce, and fn returning cur itself writes nothing.
func update[T any, P stamper[T]](ctx context.Context, s store.Store, key string, fn func(cur P) (P, error)) (P, error) {
	next, _, err := updateHeld(ctx, s, key, nil, fn)
	return next, err
}

// updateHeld is update from a held record (store.UpdateHeld); it also
// returns the index written (0: nothing written).
func updateHeld[T any, P stamper[T]](ctx context.Context, s store.Store, key string, h *store.Held[T], fn func(cur P) (P, error)) (P, uint64, error) {
	var kept P
	next, idx, err := store.UpdateHeld(ctx, s, key, h, func(cur *T) (*T, error) {
		next, err := fn(cur)
		switch {
		case err != nil:
			return nil, err
		case next == nil:
			return nil, nil
		case next == P(cur):
			kept = cur
			return nil, errNoChange
		}
		c := *(*T)(next)
		P(&c).stamp(store.Nonce())
		return &c, nil
	})
	if errors.Is(err, errNoChange) {
		return kept, 0, nil
	}
	return next, idx, err
}

// updatePool is update of the record of pool id.
func (m *IPAM) updatePool(ctx context.Context, id string, fn func(cur *Pool) (*Pool, error)) (*Pool, error) {
	return update(ctx, m.o.Store, keys.Pool(id), fn)
}
