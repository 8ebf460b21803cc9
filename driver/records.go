package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// removeEndpoint deletes one endpoint of this host everywhere; missing
// pieces are not an error.
func (d *Driver) removeEndpoint(ctx context.Context, n *Network, id string) error {
	if err := d.o.Plane.DeleteEndpoint(n.VNI, id); err != nil {
		return fmt.Errorf("delete endpoint %q: %w", id, err)
	}
	mac, err := d.endpointMACOf(ctx, n.Key, id)
	if err != nil {
		return err
	}
	ops := []store.Op{
		{Verb: store.VerbDelete, Key: keys.Endpoint(n.Key, id)},
		{Verb: store.VerbDelete, Key: keys.HostEndpoint(d.o.HostID, id)},
	}
	if err := txnWithChanges(ctx, d.o.Store, n.Key, ops, id); err != nil {
		return fmt.Errorf("delete endpoint %q: %w", id, err)
	}
	return d.releaseMACs(ctx, n.Key, id, mac)
}

// endpointMACOf reads the MAC of this host's endpoint id from its own copy
// or the cluster record; "" when both are gone.
func (d *Driver) endpointMACOf(ctx context.Context, network, id string) (string, error) {
	for _, k := range []string{keys.HostEndpoint(d.o.HostID, id), keys.Endpoint(network, id)} {
		ep, _, err := store.GetJSON[Endpoint](ctx, d.o.Store, k)
		if err == nil {
			return ep.MAC, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("delete endpoint %q: %w", id, err)
		}
	}
	return "", nil
}

// localEndpoints lists this host's own endpoint copies.
func (d *Driver) localEndpoints(ctx context.Context) ([]Endpoint, error) {
	return d.decodeEndpoints(ctx, keys.HostEndpoints(d.o.HostID))
}

// deletePrefix deletes every key under prefix.
func (d *Driver) deletePrefix(ctx context.Context, prefix string) error {
	kvs, _, err := d.o.Store.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	for _, kv := range kvs {
		if err := d.o.Store.Delete(ctx, kv.Key); err != nil {
			return fmt.Errorf("delete %q: %w", kv.Key, err)
		}
	}
	return nil
}

// endpoints lists the endpoint records of a cluster network.
func (d *Driver) endpoints(ctx context.Context, key string) ([]Endpoint, error) {
	return d.decodeEndpoints(ctx, keys.Endpoints(key))
}

// decodeEndpoints lists the endpoint records under prefix.
func (d *Driver) decodeEndpoints(ctx context.Context, prefix string) ([]Endpoint, error) {
	kvs, _, err := d.o.Store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list endpoints %q: %w", prefix, err)
	}
	out := make([]Endpoint, 0, len(kvs))
	for _, kv := range kvs {
		var ep Endpoint
		if err := store.Decode(kv, &ep); err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	return out, nil
}
