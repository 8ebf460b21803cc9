package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// removeEndpoint deletes one endpoint of this host everywhere; missing
// pieces are not an error.
func (d *Driver) removeEndpoint(ctx context.Context, n *Network, id string) error {
	d.fresh.drop(id)
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

// createNetworkRecord writes the cluster record of a new network n,
// create-only (an existing record wraps store.ErrConflict), and in the
// same transaction an empty change log.
//
// Why the log from the start: members watch changes/<net> (follow.go),
// and Consul answers a blocking query on an absent key with the index of
// the whole key space, so until the first endpoint wrote the log every
// member's watch returned on every write of the cluster (heartbeats,
// creates): 550,000 watch returns in the first 4 minutes of the 50-host
// simulation, most of the Consul servers' CPU. A log left by a killed
// removal is overwritten: a member that had read it sees its sequence
// number go back and lists the network in full (ChangeLog.since).
func createNetworkRecord(ctx context.Context, s store.Store, n *Network) error {
	rec, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode network %s: %w", n.Key, err)
	}
	empty, err := json.Marshal(ChangeLog{})
	if err != nil {
		return fmt.Errorf("encode change log of network %s: %w", n.Key, err)
	}
	return s.Txn(ctx, []store.Op{
		store.Create(keys.Network(n.Key), rec),
		{Verb: store.VerbPut, Key: keys.Changes(n.Key), Value: empty},
	})
}
