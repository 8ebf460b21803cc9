package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// cleanupTimeout bounds rollbacks, which run after the request's own
// context may have expired.
const cleanupTimeout = 10 * time.Second

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
	d.nets.drop(dockerID)
	d.fresh.dropNetwork(n.Key)
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
		if err := d.o.Store.Delete(ctx, keys.Changes(n.Key)); err != nil {
			return fmt.Errorf("leave network %s: delete its change log: %w", n.Key, err)
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
