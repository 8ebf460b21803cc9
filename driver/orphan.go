package driver

import (
	"context"

	"github.com/vxnet/vxnet/store"
)

// A lost DeleteNetwork. When dockerd's connection to the plugin fails
// before the plugin read a call (the plugin was killed), dockerd retries the
// call with an empty body: vxnet cannot tell which network it was, answers
// with an error, and dockerd only logs it, forgets the network and releases
// its pool. On a standalone host (local scope) with vxnet's IPAM, every
// vxnet network of the host holds the IPAM pool of its subnet from before
// CreateNetwork until Docker removes the network (dockerd 20.10 releases
// the pool just before it calls DeleteNetwork), and the IPAM refuses a
// second membership on the same host. So a network whose pool this host no
// longer holds is one Docker is removing or removed: reconcile removes it
// (orphaned; a DeleteNetwork that follows finds nothing to do, which is
// success), and a create on its subnet takes its place (takeOver). Swarm
// (global scope) counts pool requests differently and keeps everything.

// orphaned reports whether the host's Docker network with record ref, on
// cluster network n, is one Docker removed without vxnet knowing.
func (d *Driver) orphaned(ctx context.Context, n *Network, ref LocalRef) (bool, error) {
	if d.o.Scope == "global" || d.o.PoolState == nil || !ref.OwnIPAM {
		return false, nil
	}
	member, _, err := d.o.PoolState(ctx, n.Subnets[0])
	return !member, err
}

// takeOver is asked by CreateNetwork when the host already has another
// Docker network, other, on cluster network cur. Docker has just been given
// the subnet's pool for the new network (the pool is this host's and in
// setup), which the IPAM does only when no network of the host holds it:
// other is a network Docker removed without vxnet knowing. takeOver removes
// it and reports whether the create may go on.
func (d *Driver) takeOver(ctx context.Context, cur *Network, other string) bool {
	if d.o.Scope == "global" || d.o.PoolState == nil {
		return false
	}
	ref, _, err := store.GetJSON[LocalRef](ctx, d.o.Store, d.localKey(other))
	if err != nil || !ref.OwnIPAM {
		return false
	}
	member, setup, err := d.o.PoolState(ctx, cur.Subnets[0])
	if err != nil || !member || !setup {
		return false
	}
	log := d.logNet(cur).WithField("docker_network", other)
	log.Warn("removing a network Docker no longer has (its pool was released and requested again; its DeleteNetwork was lost)")
	if err := d.leave(ctx, cur, other); err != nil {
		log.WithError(err).Error("remove network Docker no longer has")
		return false
	}
	return true
}
