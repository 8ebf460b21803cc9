package driver

import (
	"context"
	"maps"
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
//
// Its reads of this host's own records are one round (store.Round): one
// request reads what the last check read, at the indexes it left, and
// answers the calls it covers (netCache.beginRound). The searches of the
// whole cluster (staleRecords, when a sweep is due) stay out of it. The
// records kept for a Join are checked in it first, whatever it finds
// after (checkFresh, fresh.go).
func (d *Driver) inSync(ctx context.Context) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sweepCtx := ctx
	kept := d.fresh.snapshot() // before the round's read (fresh.go)
	ctx = d.nets.beginRound(ctx, d.o.Store)
	d.checkFresh(ctx, kept)
	kvs, err := store.ListPrefix(ctx, d.o.Store, keys.HostNetworks(d.o.HostID))
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
	mine, err := d.ownEndpoints(ctx, ports)
	if err != nil {
		return false
	}
	local := map[string]bool{}
	for _, kv := range kvs {
		local[keys.Last(kv.Key)] = true
	}
	listed, err := d.ownRecords(ctx, nets, mine)
	if err != nil {
		return false
	}
	for _, n := range nets {
		if gone, unknown := portWork(n.Key, ports[n.VNI], mine, listed); len(gone) > 0 || len(unknown) > 0 {
			return false
		}
	}
	joined, reserved, err := d.staleRecords(sweepCtx, local)
	return err == nil && len(joined) == 0 && len(reserved) == 0
}

// networksInSync reads the cluster networks of this host's records kvs
// and lists their bridge ports (by VNI). It reports false when a network
// is gone, orphaned, missing from the kernel (have) or failing repair, or
// when a namespace exists that none of them needs.
func (d *Driver) networksInSync(ctx context.Context, kvs []store.KV, have []uint32) ([]*Network, map[uint32][]string, bool) {
	var nets []*Network
	ports := map[uint32][]string{}
	refs := make([]LocalRef, len(kvs))
	clusterKeys := make([]string, len(kvs))
	for i, kv := range kvs {
		if err := store.Decode(kv, &refs[i]); err != nil {
			return nil, nil, false
		}
		clusterKeys[i] = keys.Network(refs[i].Network)
	}
	// One index check for every record (netCache.records): each is read
	// again only when it changed since the last round, instead of a
	// record that grows with the network's hosts, every round.
	recs, err := d.nets.records.GetAll(ctx, d.o.Store, clusterKeys)
	if err != nil {
		return nil, nil, false
	}
	for i := range refs {
		c, ok := recs[clusterKeys[i]]
		if !ok || !slices.Contains(have, c.Value.VNI) {
			return nil, nil, false
		}
		nets = append(nets, c.Value)
	}
	if gone, err := d.anyOrphaned(ctx, nets, refs); err != nil || gone {
		return nil, nil, false
	}
	for _, n := range nets {
		if err := d.o.Plane.EnsureNetwork(d.netConfig(n)); err != nil {
			return nil, nil, false
		}
		d.startWatch(n)
		p, err := d.o.Plane.Endpoints(n.VNI)
		if err != nil {
			return nil, nil, false
		}
		ports[n.VNI] = p
	}
	for _, vni := range have {
		if _, ok := ports[vni]; !ok {
			return nil, nil, false
		}
	}
	return nets, ports, true
}

// ownRecords is the set of the cluster record keys of this host's
// endpoints (mine) that exist, which is all portWork asks of the
// network's listing: one index check of the records read before
// (netCache.ownRecords), a read of each one new or changed since. A
// listing of each network's keys grew with the network's endpoints, every
// round on every host (22 KB per network of 250 endpoints). A store
// without the check (store.IndexChecker) is listed per network of nets as
// before: a read per endpoint would cost more.
func (d *Driver) ownRecords(ctx context.Context, nets []*Network, mine []Endpoint) (map[string]bool, error) {
	if _, ok := d.o.Store.(store.IndexChecker); !ok {
		listed := map[string]bool{}
		for _, n := range nets {
			l, err := d.listedEndpoints(ctx, n.Key)
			if err != nil {
				return nil, err
			}
			maps.Copy(listed, l)
		}
		return listed, nil
	}
	ks := make([]string, len(mine))
	for i, ep := range mine {
		ks[i] = keys.Endpoint(ep.Network, ep.ID)
	}
	// mine is every endpoint of this host: the records of those deleted
	// since are asked for no more, and would stay cached for good.
	d.nets.ownRecords.Retain(ks)
	got, err := d.nets.ownRecords.GetAll(ctx, d.o.Store, ks)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]bool, len(got))
	for k := range got {
		listed[k] = true
	}
	return listed, nil
}

// present decodes any record: ownRecords asks only whether one exists (a
// record that does not decode still counts as there, as in a listing).
type present struct{}

func (*present) UnmarshalJSON([]byte) error { return nil }
