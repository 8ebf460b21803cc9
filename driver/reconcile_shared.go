package driver

import (
	"context"
	"slices"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// inSync is Reconcile's check, made sharing the driver's lock with the
// endpoint callbacks: it reads what Reconcile compares and reports
// whether nothing needs a repair that must exclude them. On the way it
// makes the repairs that need not (EnsureNetwork of a namespace that
// exists, starting a peer watcher), as Reconcile would. Anything found
// amiss, or any read that fails, is false: Reconcile then takes the lock
// alone and reads again, so a state an endpoint callback was changing
// while this looked costs a round under the lock, never a wrong repair.
//
// The order makes a callback in flight look amiss rather than fine:
// ports are listed before this host's endpoint copies, so a port a Join
// made has its copy (CreateEndpoint wrote it before) in that listing.
func (d *Driver) inSync(ctx context.Context) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	kvs, _, err := d.o.Store.List(ctx, keys.HostNetworks(d.o.HostID))
	if err != nil {
		return false
	}
	have, err := d.o.Plane.Networks()
	if err != nil {
		return false
	}
	nets, ports, ok := d.networksInSync(ctx, kvs, have)
	if !ok {
		return false
	}
	mine, err := d.localEndpoints(ctx)
	if err != nil {
		return false
	}
	local := map[string]bool{}
	for _, kv := range kvs {
		local[keys.Last(kv.Key)] = true
	}
	for _, n := range nets {
		listed, err := d.listedEndpoints(ctx, n.Key)
		if err != nil {
			return false
		}
		if gone, unknown := portWork(n.Key, ports[n.VNI], mine, listed); len(gone) > 0 || len(unknown) > 0 {
			return false
		}
	}
	joined, reserved, err := d.staleRecords(ctx, local)
	return err == nil && len(joined) == 0 && len(reserved) == 0
}

// networksInSync reads the cluster networks of this host's records kvs
// and lists their bridge ports (by VNI). It reports false when a network
// is gone, orphaned, missing from the kernel (have) or failing repair, or
// when a namespace exists that none of them needs.
func (d *Driver) networksInSync(ctx context.Context, kvs []store.KV, have []uint32) ([]*Network, map[uint32][]string, bool) {
	var nets []*Network
	ports := map[uint32][]string{}
	for _, kv := range kvs {
		var ref LocalRef
		if err := store.Decode(kv, &ref); err != nil {
			return nil, nil, false
		}
		n, err := d.networkOf(ctx, keys.Last(kv.Key), &ref)
		if err != nil || !slices.Contains(have, n.VNI) {
			return nil, nil, false
		}
		if gone, err := d.orphaned(ctx, n, ref); err != nil || gone {
			return nil, nil, false
		}
		if err := d.o.Plane.EnsureNetwork(d.netConfig(n)); err != nil {
			return nil, nil, false
		}
		d.startWatch(n)
		p, err := d.o.Plane.Endpoints(n.VNI)
		if err != nil {
			return nil, nil, false
		}
		nets, ports[n.VNI] = append(nets, n), p
	}
	for _, vni := range have {
		if _, ok := ports[vni]; !ok {
			return nil, nil, false
		}
	}
	return nets, ports, true
}
