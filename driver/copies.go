package driver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// copyCache keeps this host's endpoint copies (keys.HostEndpoint), decoded,
// by key, for reconcile's check (inSync): a round lists their keys alone,
// only when it must (below), and reads only the copies it has not seen.
//
// Why: the check listed every copy with its value each round (5 s), about
// 0.5 KB per endpoint: 0.5 MB at 1000 endpoints for Consul to send and the
// plugin to decode, growing with the endpoints and paid by the Joins
// running beside it (issue #13).
//
// A copy never changes while it exists: it is written create-only
// (publish, recordEndpoint) and only deleted after; endpoint IDs are
// Docker's, never reused. So a key listed again holds the value read
// before. Even a copy deleted and made again between two rounds under the
// same ID (a CreateEndpoint Docker retried) cannot mislead the check: it
// uses only the copy's ID, which is its key, and its network, which is
// that of the Docker network the ID was made in. The repair
// (reconcileLocked) reads the copies afresh, not from here.
//
// And a round need not list them (current): what the check compares are
// the bridge ports with the copies of their endpoints. When every port
// has a cached copy and no cached copy moved (one index check, which a
// reconcile round answers from its one read: store.Round), a listing
// would change nothing the check decides: a copy written since without a
// port is not compared, and a deleted one fails its check. A port of an
// endpoint not cached (a Join since the last listing) makes the round
// list, after the ports, so its copy (written by CreateEndpoint, before
// the Join) is in that listing.
type copyCache struct {
	mu  sync.Mutex
	m   map[string]Endpoint // nil until the first listing
	idx map[string]uint64   // the ModifyIndex each copy was read at
}

// ownEndpoints returns this host's endpoint copies, sorted by key, as
// localEndpoints does: where the store lists keys alone
// (store.KeyLister), from the cache, listing their keys only when a port
// of ports (by VNI, listed before) has no cached copy or a cached copy
// moved (copyCache); else from a listing with the values.
func (d *Driver) ownEndpoints(ctx context.Context, ports map[uint32][]string) ([]Endpoint, error) {
	prefix := keys.HostEndpoints(d.o.HostID)
	if _, ok := d.o.Store.(store.KeyLister); !ok {
		return d.decodeEndpoints(ctx, prefix)
	}
	if eps, ok := d.nets.copies.current(ctx, d.o.Store, ports); ok {
		return eps, nil
	}
	ks, err := store.ListKeys(ctx, d.o.Store, prefix)
	if err != nil {
		return nil, fmt.Errorf("list endpoints %q: %w", prefix, err)
	}
	return d.nets.copies.get(ctx, d.o.Store, ks)
}

// current returns the cached copies, sorted by key, when no listing is
// needed: a listing was made, every port of ports has a cached copy, and
// no cached copy was deleted since it was read.
func (c *copyCache) current(ctx context.Context, s store.Store, ports map[uint32][]string) ([]Endpoint, bool) {
	c.mu.Lock()
	if c.m == nil {
		c.mu.Unlock()
		return nil, false
	}
	known := maps.Clone(c.idx)
	eps := make(map[string]Endpoint, len(c.m))
	cached := make(map[string]int, len(c.m)) // copies by short ID
	for k, ep := range c.m {
		eps[k] = ep
		cached[dataplane.ShortID(ep.ID)]++
	}
	c.mu.Unlock()
	for _, ps := range ports {
		for _, p := range ps {
			if cached[dataplane.ShortID(p)]--; cached[dataplane.ShortID(p)] < 0 {
				return nil, false // a port more than the copies cached
			}
		}
	}
	if changed, err := store.Changed(ctx, s, known); err != nil || len(changed) > 0 {
		return nil, false
	}
	out := make([]Endpoint, 0, len(eps))
	for _, k := range slices.Sorted(maps.Keys(eps)) {
		out = append(out, eps[k])
	}
	return out, true
}

// get returns the copies of keys ks, in their order, reading those not
// cached (together: store.GetMany); it forgets cached keys not in ks
// (deleted since). A key deleted between the listing and its read is left
// out.
func (c *copyCache) get(ctx context.Context, s store.Store, ks []string) ([]Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for _, k := range ks {
		if _, ok := c.m[k]; !ok {
			missing = append(missing, k)
		}
	}
	read, err := store.GetMany(ctx, s, missing)
	if err != nil {
		return nil, fmt.Errorf("read endpoint copies %q: %w", store.KeysName(missing), err)
	}
	listed := make(map[string]Endpoint, len(ks))
	idx := make(map[string]uint64, len(ks))
	out := make([]Endpoint, 0, len(ks))
	for _, k := range ks {
		ep, ok := c.m[k]
		at := c.idx[k]
		if !ok {
			kv, found := read[k]
			if !found {
				continue
			}
			if err := store.Decode(kv, &ep); err != nil {
				return nil, err
			}
			at = kv.ModifyIndex
		}
		listed[k], idx[k] = ep, at
		out = append(out, ep)
	}
	c.m, c.idx = listed, idx
	return out, nil
}
