package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// orphaned reports whether the host's Docker network with record ref, on
// cluster network n, is one Docker removed without vxnet knowing.
//
// Why (a lost DeleteNetwork): When dockerd's connection to the plugin fails
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
func (d *Driver) orphaned(ctx context.Context, n *Network, ref LocalRef) (bool, error) {
	if d.o.Scope.Swarm() || d.o.Pools == nil || !ref.OwnIPAM {
		return false, nil
	}
	member, _, err := d.o.Pools.PoolState(ctx, n.Subnets[0])
	return !member, err
}

// anyOrphaned reports whether any of nets (the host's networks, with
// their records refs in the same order) is orphaned, asking the IPAM for
// all their pools at once: reconcile's check runs every round on every
// host, and a request per network was most of an idle host's requests at
// 20 networks (docs/scaling.md).
func (d *Driver) anyOrphaned(ctx context.Context, nets []*Network, refs []LocalRef) (bool, error) {
	if d.o.Scope.Swarm() || d.o.Pools == nil {
		return false, nil
	}
	var subnets []netip.Prefix
	for i, n := range nets {
		if refs[i].OwnIPAM {
			subnets = append(subnets, n.Subnets[0])
		}
	}
	if len(subnets) == 0 {
		return false, nil
	}
	member, err := d.o.Pools.PoolMembers(ctx, subnets)
	if err != nil {
		return false, err
	}
	for _, s := range subnets {
		if !member[s] {
			return true, nil
		}
	}
	return false, nil
}

// takeOver is asked by CreateNetwork when the host already has another
// Docker network, other, on cluster network cur. Docker has just been given
// the subnet's pool for the new network (the pool is this host's and in
// setup), which the IPAM does only when no network of the host holds it:
// other is a network Docker removed without vxnet knowing. takeOver removes
// it and reports whether the create may go on.
func (d *Driver) takeOver(ctx context.Context, cur *Network, other string) bool {
	log := d.logNet(cur).WithField("docker_network", other)
	ref, _, err := store.GetJSON[LocalRef](ctx, d.o.Store, keys.HostNetwork(d.o.HostID, other))
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A create killed between joining and recording the network:
		// no Docker network was ever created (dropStale).
		log.Warn("leaving a network a killed create joined but never recorded")
	case err != nil || !ref.OwnIPAM:
		return false
	case d.o.Scope.Swarm() || d.o.Pools == nil:
		return false
	default:
		member, setup, err := d.o.Pools.PoolState(ctx, cur.Subnets[0])
		if err != nil || !member || !setup {
			return false
		}
		log.Warn("removing a network Docker no longer has (its pool was released and requested again; its DeleteNetwork was lost)")
	}
	if err := d.leave(ctx, cur, other); err != nil {
		log.WithError(err).Error("remove network Docker no longer has")
		return false
	}
	return true
}

// dropStale leaves the cluster networks that list this host with a Docker
// network it has not recorded (local holds the recorded ones), and frees
// the VNIs this host reserved for a network that does not hold them. It
// returns the VNIs of the networks it left, and the VNIs it freed (whose
// namespaces a killed create may have left).
//
// Why (a create killed half-way): CreateNetwork reserves the VNI, writes the
// cluster record (or adds this host to it), then records the host's Docker
// network; a kill between those steps leaves a VNI no network has, or a
// membership no Docker network of this host backs, and either keeps the
// cluster record and the VNI alive for good. Docker took the create as
// failed, so nothing will remove them. Reconcile holds the driver's lock,
// so no create of this host is under way: what this host reserved or
// joined and did not record is stale.
func (d *Driver) dropStale(ctx context.Context, local map[string]bool) (left, freed map[uint32]bool, err error) {
	joined, reserved, err := d.staleRecords(ctx, local)
	if err != nil {
		return nil, nil, err
	}
	left, freed = map[uint32]bool{}, map[uint32]bool{}
	var errs []error
	for _, n := range joined {
		id := n.Hosts[d.o.HostID]
		if err := d.unused(n.VNI); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: network %s joined by a killed create: %w", n.Key, err))
			continue
		}
		d.logNet(&n).WithField("docker_network", id).Warn("reconcile: leaving a network a killed create joined but never recorded")
		if err := d.leave(ctx, &n, id); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: leave network %s: %w", n.Key, err))
			continue
		}
		left[n.VNI] = true
	}
	for _, kv := range reserved {
		var rec VNIRecord
		if err := store.Decode(kv, &rec); err != nil {
			continue
		}
		d.o.Log.WithFields(map[string]any{"vni_key": kv.Key, "network": rec.Network}).Warn("reconcile: freeing a VNI a killed create reserved")
		if err := d.o.Store.DeleteCAS(ctx, kv.Key, kv.ModifyIndex); err != nil && !errors.Is(err, store.ErrConflict) {
			errs = append(errs, fmt.Errorf("reconcile: free %s: %w", kv.Key, err))
			continue
		}
		if v, ok := keys.ParseVNI(kv.Key); ok {
			freed[v] = true
		}
	}
	return left, freed, errors.Join(errs...)
}

// staleRecords finds what dropStale removes, without changing anything:
// the cluster networks listing this host with a Docker network not in
// local, and the VNI reservations of this host no network holds. It
// reads, and finds, nothing in rounds when no sweep is due (sweep.go).
func (d *Driver) staleRecords(ctx context.Context, local map[string]bool) (joined []Network, reserved []store.KV, err error) {
	if due, _ := d.sweep.due(time.Now()); !due {
		return nil, nil, nil
	}
	// Every network record of the cluster, each read again only when it
	// changed (netCache.records): listed in full, every round on every
	// host, they grew over the cluster with hosts² × networks.
	nets, err := d.nets.records.List(ctx, d.o.Store, keys.Networks)
	if err != nil {
		return nil, nil, fmt.Errorf("reconcile: list networks: %w", err)
	}
	held := map[string]bool{} // VNI keys that a network holds
	for _, c := range nets {
		n := *c.Value
		held[keys.VNI(n.VNI)] = true
		if id, ok := n.Hosts[d.o.HostID]; ok && !local[id] {
			joined = append(joined, n)
		}
	}
	vnis, _, err := d.o.Store.List(ctx, keys.VNIs)
	if err != nil {
		return joined, nil, fmt.Errorf("reconcile: list VNIs: %w", err)
	}
	for _, kv := range vnis {
		var rec VNIRecord
		if err := store.Decode(kv, &rec); err == nil && rec.Host == d.o.HostID && !held[kv.Key] {
			reserved = append(reserved, kv)
		}
	}
	return joined, reserved, nil
}
