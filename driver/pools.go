package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// LocalPools returns the IPAM pool IDs of the subnets of this host's
// networks: the pools the host uses (see ipam.IPAM.ReleaseUnfinished).
func (d *Driver) LocalPools(ctx context.Context) (map[string]bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	kvs, _, err := d.o.Store.List(ctx, keys.HostNetworks(d.o.HostID))
	if err != nil {
		return nil, fmt.Errorf("list networks of host %q: %w", d.o.HostID, err)
	}
	pools := map[string]bool{}
	for _, kv := range kvs {
		var ref LocalRef
		if err := store.Decode(kv, &ref); err != nil {
			return nil, err
		}
		n, err := d.networkOf(ctx, strings.TrimPrefix(kv.Key, keys.HostNetworks(d.o.HostID)), &ref)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, s := range n.Subnets {
			pools[keys.PoolID(s)] = true
		}
	}
	return pools, nil
}
