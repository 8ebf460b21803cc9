package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// cleanupTimeout bounds rollbacks, which run after the request's own
// context may have expired.
const cleanupTimeout = 10 * time.Second

// DeleteNetwork removes this host from the network: its local endpoints,
// the namespace, and its membership; the last host also removes the cluster
// record and the VNI. An unknown network is not an error (Docker retries
// deletes after failures).
func (d *Driver) DeleteNetwork(ctx context.Context, r *network.DeleteNetworkRequest) error {
	if err := validID("network", r.NetworkID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup(ctx, r.NetworkID)
	if err != nil {
		_, gerr := d.o.Store.Get(ctx, keys.HostNetwork(d.o.HostID, r.NetworkID))
		if errors.Is(gerr, store.ErrNotFound) {
			d.o.Log.WithField("docker_network", r.NetworkID).Info("delete of unknown network: nothing to do")
			return nil
		}
		return err
	}
	if err := d.leave(ctx, n, r.NetworkID); err != nil {
		return fmt.Errorf("delete network %q: %w", r.NetworkID, err)
	}
	d.logNet(n).WithField("docker_network", r.NetworkID).Info("network deleted")
	return nil
}

// rollbackCreate undoes a CreateNetwork that failed after join.
func (d *Driver) rollbackCreate(n *Network, dockerID string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := d.leave(ctx, n, dockerID); err != nil {
		d.logNet(n).WithError(err).Error("roll back failed network create")
	}
}

// leave is the common part of DeleteNetwork and a failed CreateNetwork, in
// reverse order of creation: endpoints, kernel, membership, local ref.
func (d *Driver) leave(ctx context.Context, n *Network, dockerID string) error {
	d.stopWatch(n.Key)
	if err := d.deleteLocalEndpoints(ctx, n); err != nil {
		return err
	}
	if err := d.o.Plane.DeleteNetwork(n.VNI); err != nil {
		return err
	}
	last := false
	_, err := store.Update(ctx, d.o.Store, keys.Network(n.Key), func(cur *Network) (*Network, error) {
		last = false
		if cur == nil {
			return nil, nil
		}
		if cur.Hosts[d.o.HostID] != dockerID {
			return cur, nil // not ours (another Docker network on this host owns it)
		}
		next := *cur
		next.Hosts = map[string]string{}
		for h, id := range cur.Hosts {
			if h != d.o.HostID {
				next.Hosts[h] = id
			}
		}
		if len(next.Hosts) == 0 {
			last = true
			return nil, nil
		}
		return &next, nil
	})
	if err != nil {
		return fmt.Errorf("leave network %s: %w", n.Key, err)
	}
	if last {
		for _, prefix := range []string{keys.Endpoints(n.Key), keys.MACs(n.Key)} {
			if err := d.deletePrefix(ctx, prefix); err != nil {
				return err
			}
		}
		if err := d.o.Store.Delete(ctx, keys.VNI(n.VNI)); err != nil {
			return fmt.Errorf("release VNI %d: %w", n.VNI, err)
		}
	}
	if err := d.o.Store.Delete(ctx, keys.HostNetwork(d.o.HostID, dockerID)); err != nil {
		return fmt.Errorf("forget network %q: %w", dockerID, err)
	}
	return nil
}

// deleteLocalEndpoints removes this host's endpoints of n: kernel, cluster
// record, own copy.
func (d *Driver) deleteLocalEndpoints(ctx context.Context, n *Network) error {
	eps, err := d.localEndpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Network != n.Key {
			continue
		}
		if err := d.removeEndpoint(ctx, n, ep.ID); err != nil {
			return err
		}
	}
	return nil
}

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
	for _, k := range []string{keys.Endpoint(n.Key, id), keys.HostEndpoint(d.o.HostID, id)} {
		if err := d.o.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete endpoint %q: %w", id, err)
		}
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
