package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Names of containers (package names): the endpoint's host writes them
// into the endpoint record; every host hands the records it programs to
// OnEndpoints. These are the driver's hooks for it.

// feedNames gives OnEndpoints the listed endpoints of network key (never
// nil, maybe empty).
func (d *Driver) feedNames(key string, kvs []store.KV, recs *recordCache) {
	if d.o.OnEndpoints == nil {
		return
	}
	eps := make([]Endpoint, 0, len(kvs))
	for _, kv := range kvs {
		if ep, err := recs.decode(kv); err == nil {
			eps = append(eps, ep)
		}
	}
	d.o.OnEndpoints(key, eps)
}

// dropNames tells OnEndpoints that network key is no longer watched here.
func (d *Driver) dropNames(key string) {
	if d.o.OnEndpoints != nil {
		d.o.OnEndpoints(key, nil)
	}
}

// LocalNetworks maps this host's Docker network IDs of vxnet networks to
// their cluster keys.
func (d *Driver) LocalNetworks(ctx context.Context) (map[string]string, error) {
	kvs, _, err := d.o.Store.List(ctx, keys.HostNetworks(d.o.HostID))
	if err != nil {
		return nil, fmt.Errorf("list this host's networks: %w", err)
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		var ref LocalRef
		if err := store.Decode(kv, &ref); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(kv.Key, keys.HostNetworks(d.o.HostID))] = ref.Network
	}
	return out, nil
}

// SetNames writes names into the record of this host's endpoint on Docker
// network dockerNet, and tells whether the record holds them now: an
// endpoint (or network) without a record here is not an error, it is
// written on a later call.
func (d *Driver) SetNames(ctx context.Context, dockerNet, endpoint string, names []string) (bool, error) {
	if err := validID("endpoint", endpoint); err != nil {
		return false, err
	}
	ref, _, err := store.GetJSON[LocalRef](ctx, d.o.Store, keys.HostNetwork(d.o.HostID, dockerNet))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("set names of endpoint %q: look up network %q: %w", endpoint, dockerNet, err)
	}
	found := false
	_, err = store.Update(ctx, d.o.Store, keys.Endpoint(ref.Network, endpoint), func(cur *Endpoint) (*Endpoint, error) {
		found = cur != nil
		if cur == nil || slices.Equal(cur.Names, names) {
			return cur, errUnchanged
		}
		if cur.Host != d.o.HostID {
			return nil, fmt.Errorf("endpoint %q belongs to host %s", endpoint, cur.Host)
		}
		next := *cur
		next.Names = slices.Clone(names)
		return &next, nil
	})
	if err == nil {
		err = noteChanges(ctx, d.o.Store, ref.Network, endpoint)
	}
	if err != nil && !errors.Is(err, errUnchanged) {
		return false, fmt.Errorf("set names of endpoint %q in network %s: %w", endpoint, ref.Network, err)
	}
	return found, nil
}

// errUnchanged ends an Update that has nothing to write.
var errUnchanged = errors.New("unchanged")
