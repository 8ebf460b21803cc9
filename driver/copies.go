package driver

import (
	"context"
	"fmt"
	"sync"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// copyCache keeps this host's endpoint copies (keys.HostEndpoint), decoded,
// by key, for reconcile's check (inSync): each round lists their keys
// alone and reads only the copies it has not seen.
//
// Why: the check listed every copy with its value each round (5 s), about
// 0.5 KB per endpoint: 0.5 MB at 1000 endpoints for Consul to send and the
// plugin to decode, growing with the endpoints and paid by the Joins
// running beside it (issue #13).
//
// Why no index check, as store.Cache makes: a copy never changes while it
// exists. It is written create-only (publish, recordEndpoint) and only
// deleted after; endpoint IDs are Docker's, never reused. So a key listed
// again holds the value read before. Even a copy deleted and made again
// between two rounds under the same ID (a CreateEndpoint Docker retried)
// cannot mislead the check: it uses only the copy's ID, which is its key,
// and its network, which is that of the Docker network the ID was made
// in. The repair (reconcileLocked) reads the copies afresh, not from here.
type copyCache struct {
	mu sync.Mutex
	m  map[string]Endpoint
}

// ownEndpoints returns this host's endpoint copies, sorted by key, as
// localEndpoints does: from the cache and a listing of their keys where
// the store lists keys alone (store.KeyLister), else from a listing with
// the values.
func (d *Driver) ownEndpoints(ctx context.Context) ([]Endpoint, error) {
	prefix := keys.HostEndpoints(d.o.HostID)
	if _, ok := d.o.Store.(store.KeyLister); !ok {
		return d.decodeEndpoints(ctx, prefix)
	}
	ks, err := store.ListKeys(ctx, d.o.Store, prefix)
	if err != nil {
		return nil, fmt.Errorf("list endpoints %q: %w", prefix, err)
	}
	return d.nets.copies.get(ctx, d.o.Store, ks)
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
	out := make([]Endpoint, 0, len(ks))
	for _, k := range ks {
		ep, ok := c.m[k]
		if !ok {
			kv, found := read[k]
			if !found {
				continue
			}
			if err := store.Decode(kv, &ep); err != nil {
				return nil, err
			}
		}
		listed[k] = ep
		out = append(out, ep)
	}
	c.m = listed
	return out, nil
}
