package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Reconcile makes the kernel match the store for this host: it rebuilds
// the namespace of every network this host has (recreating what is
// missing), deletes bridge ports of endpoints that no longer exist, and
// deletes namespaces of networks this host no longer has. It runs at start
// and periodically; running containers keep their veths throughout.
//
// Three phases, under the driver's lock (reconcileLocked):
// reconcileNetworks repairs every network the store lists for this host;
// only when every record could be read (a network whose record could not be read is still this host's:
// removing namespaces now could cut a running network's traffic),
// dropStale undoes creates killed half-way, and removeUnused deletes the
// namespaces no network of this host needs.
//
// That lock excludes the endpoint callbacks, and reading what to compare
// grows with the endpoints (two listings of a network's records, a dump of
// its links): held every round, it made Joins wait (issue #13). So a round
// first checks, sharing the lock with the callbacks, whether anything needs
// a repair that must exclude them (inSync, reconcile_shared.go), and takes
// the lock alone only then.
func (d *Driver) Reconcile(ctx context.Context) error {
	if d.inSync(ctx) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reconcileLocked(ctx)
}

// reconcileLocked is Reconcile's repair; the caller holds mu alone.
func (d *Driver) reconcileLocked(ctx context.Context) error {
	d.nets.clear() // it may drop networks this host had (netcache.go)
	kvs, _, err := d.o.Store.List(ctx, keys.HostNetworks(d.o.HostID))
	if err != nil {
		return fmt.Errorf("reconcile: list networks of host %q: %w", d.o.HostID, err)
	}
	have, err := d.o.Plane.Networks()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	want, err := d.reconcileNetworks(ctx, kvs, have)
	if err != nil {
		return err
	}
	local := map[string]bool{}
	for _, kv := range kvs {
		local[keys.Last(kv.Key)] = true
	}
	left, freed, err := d.dropStale(ctx, local)
	if err != nil {
		return err
	}
	return d.removeUnused(have, want, left, freed, len(kvs) == 0)
}

// reconcileNetworks repairs the network of each of this host's records
// kvs (hosts/<host>/networks/<docker id>), given the VNIs of the
// namespaces the kernel has, and returns the VNIs this host still needs.
// A record whose cluster network is gone, or that Docker removed without
// vxnet knowing, is dropped with its network.
func (d *Driver) reconcileNetworks(ctx context.Context, kvs []store.KV, have []uint32) (map[uint32]bool, error) {
	want := map[uint32]bool{}
	if len(kvs) == 0 {
		return want, nil
	}
	// This host's endpoint copies, read once for all its networks.
	mine, err := d.localEndpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	var errs []error
	for _, kv := range kvs {
		dockerID := keys.Last(kv.Key)
		var ref LocalRef
		if err := store.Decode(kv, &ref); err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := d.networkOf(ctx, dockerID, &ref)
		if errors.Is(err, store.ErrNotFound) {
			// The cluster record is gone, the host's record of the network
			// is not: a DeleteNetwork killed after the last host left.
			errs = append(errs, d.forgetGone(ctx, dockerID, ref.Network))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if gone, err := d.orphaned(ctx, n, ref); err != nil || gone {
			if err == nil {
				err = d.removeOrphan(ctx, n, dockerID)
			}
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		want[n.VNI] = true
		if err := d.reconcileNetwork(ctx, n, slices.Contains(have, n.VNI), mine); err != nil {
			errs = append(errs, err)
		}
	}
	return want, errors.Join(errs...)
}

// removeUnused deletes the namespaces (VNIs have) that no network of this
// host needs (want), nor one it just left (left), unless a running
// container still uses them. When the store lists no network of this host
// at all (none), only the namespaces of VNIs it just freed go: bad
// information (a wrong prefix, a changed host ID) must not destroy live
// state.
func (d *Driver) removeUnused(have []uint32, want, left, freed map[uint32]bool, none bool) error {
	var errs []error
	var unknown []uint32
	for _, vni := range have {
		if want[vni] || left[vni] {
			continue
		}
		if none && !freed[vni] {
			unknown = append(unknown, vni)
			continue
		}
		if err := d.unused(vni); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: namespace of a network this host no longer has: %w", err))
			continue
		}
		d.o.Log.WithField("vni", vni).Warn("reconcile: removing namespace of a network this host no longer has")
		if err := d.o.Plane.DeleteNetwork(vni); err != nil {
			errs = append(errs, err)
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("reconcile: the store lists no network of host %q, yet namespaces of VNIs %v exist here; deleting nothing. A changed --host-id, a wrong --store prefix, a token that may not read %s, a restored snapshot? Fix the setting. A host forgotten with vxnet host forget is cleared by hand: docker network rm its vxnet networks, then umount and remove the files vx-<VNI> in --netns-dir", d.o.HostID, unknown, keys.Hosts))
	}
	return errors.Join(errs...)
}

// forgetGone drops this host's record of Docker network dockerID, whose
// cluster network key is gone, and its endpoint copies; its namespace goes
// with the namespaces of networks the host no longer has.
func (d *Driver) forgetGone(ctx context.Context, dockerID, key string) error {
	d.o.Log.WithFields(map[string]any{"docker_network": dockerID, "network": key}).Warn("reconcile: forgetting a network whose cluster record is gone (a DeleteNetwork killed after the last host left)")
	d.fresh.dropNetwork(key)
	eps, err := d.localEndpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Network != key {
			continue
		}
		if err := errors.Join(d.o.Store.Delete(ctx, keys.Endpoint(key, ep.ID)), d.releaseMACs(ctx, key, ep.ID, ep.MAC), d.o.Store.Delete(ctx, keys.HostEndpoint(d.o.HostID, ep.ID))); err != nil {
			return fmt.Errorf("reconcile: forget endpoint %q: %w", ep.ID, err)
		}
	}
	if err := errors.Join(d.o.Store.Delete(ctx, keys.Changes(key)), d.o.Store.Delete(ctx, keys.HostNetwork(d.o.HostID, dockerID))); err != nil {
		return fmt.Errorf("reconcile: forget network %q: %w", dockerID, err)
	}
	return nil
}

// unused fails, naming them, when containers still use the namespace of
// vni: whatever the store says, it is not deleted then.
func (d *Driver) unused(vni uint32) error {
	used, err := d.o.Plane.InUse(vni)
	if errors.Is(err, dataplane.ErrNotFound) {
		return nil // no namespace
	}
	if err != nil {
		return err
	}
	if len(used) > 0 {
		return fmt.Errorf("namespace of VNI %d kept: running containers use its ports %v", vni, used)
	}
	return nil
}

// removeOrphan removes a network Docker no longer has (orphaned).
func (d *Driver) removeOrphan(ctx context.Context, n *Network, dockerID string) error {
	if err := d.unused(n.VNI); err != nil {
		return fmt.Errorf("reconcile: network %q looks removed by Docker, but: %w", dockerID, err)
	}
	d.logNet(n).WithField("docker_network", dockerID).Warn("reconcile: removing a network Docker no longer has (its pool was released; its DeleteNetwork was lost)")
	if err := d.leave(ctx, n, dockerID); err != nil {
		return fmt.Errorf("reconcile: remove network %q Docker no longer has: %w", dockerID, err)
	}
	return nil
}

// reconcileNetwork repairs n's namespace and republishes the records of
// its endpoints among mine (this host's copies) that have their veth.
func (d *Driver) reconcileNetwork(ctx context.Context, n *Network, existed bool, mine []Endpoint) error {
	if err := d.o.Plane.EnsureNetwork(d.netConfig(n)); err != nil {
		return fmt.Errorf("reconcile network %s: %w", n.Key, err)
	}
	if !existed {
		d.logNet(n).Warn("reconcile: recreated missing namespace")
	}
	d.startWatch(n)
	ports, err := d.o.Plane.Endpoints(n.VNI)
	if err != nil {
		return err
	}
	listed, err := d.listedEndpoints(ctx, n.Key)
	if err != nil {
		return err
	}
	gone, unknown := portWork(n.Key, ports, mine, listed)
	var errs []error
	for _, ep := range gone {
		if err := d.republish(ctx, &ep); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, d.removeUnknownPorts(n, unknown))
	if n.Options.OwnEgress() {
		errs = append(errs, d.o.Plane.PrunePublished(n.VNI))
	}
	return errors.Join(errs...)
}

// portWork compares the bridge ports of network key with this host's
// endpoint copies (mine) and the keys of the network's records (listed):
// it returns the endpoints whose cluster record is gone though their veth
// is there (to republish), and the ports without an endpoint copy.
func portWork(key string, ports []string, mine []Endpoint, listed map[string]bool) (gone []Endpoint, unknown []string) {
	live := map[string]bool{}
	for _, p := range ports {
		live[dataplane.ShortID(p)] = true
	}
	known := map[string]bool{}
	for _, ep := range mine {
		if ep.Network != key {
			continue
		}
		known[dataplane.ShortID(ep.ID)] = true
		// Only an endpoint with its veth is a running container's: one
		// without is between CreateEndpoint and Join (its record is
		// there), or a create whose answer was lost, which must not
		// come back (its removal is journaled).
		if live[dataplane.ShortID(ep.ID)] && !listed[keys.Endpoint(ep.Network, ep.ID)] {
			gone = append(gone, ep)
		}
	}
	for _, p := range ports {
		if !known[dataplane.ShortID(p)] {
			unknown = append(unknown, p)
		}
	}
	return gone, unknown
}

// removeUnknownPorts deletes the bridge ports unknown of n, which have no
// endpoint record, unless a running container uses them. Which ports
// containers use is asked only when there are unknown ones: it is a
// netlink lookup per port.
func (d *Driver) removeUnknownPorts(n *Network, unknown []string) error {
	if len(unknown) == 0 {
		return nil
	}
	used, err := d.o.Plane.InUse(n.VNI)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range unknown {
		if slices.Contains(used, p) {
			errs = append(errs, fmt.Errorf("reconcile: network %s: port %q has no endpoint record but a running container uses it: left alone", n.Key, p))
			continue
		}
		d.logNet(n).WithField("endpoint", p).Warn("reconcile: removing veth of an unknown endpoint (a Join cut short)")
		if err := d.o.Plane.DeleteEndpoint(n.VNI, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listedEndpoints is the set of endpoint record keys of cluster network
// key, from one listing: reconcile holds the driver's lock, and a read per
// endpoint every interval made it, and the Joins waiting on it, grow with
// the network (Join p99 1.8 s at 1000 endpoints). Keys only, without
// their values (store.ListKeys): a record that does not decode still
// counts as there, and the values were most of an idle host's reads.
func (d *Driver) listedEndpoints(ctx context.Context, key string) (map[string]bool, error) {
	ks, err := store.ListKeys(ctx, d.o.Store, keys.Endpoints(key))
	if err != nil {
		return nil, fmt.Errorf("reconcile network %s: list endpoints: %w", key, err)
	}
	listed := make(map[string]bool, len(ks))
	for _, k := range ks {
		listed[k] = true
	}
	return listed, nil
}

// republish restores the cluster record of one of this host's endpoints
// (and its address leases) after other hosts purged them while this host
// was gone.
func (d *Driver) republish(ctx context.Context, ep *Endpoint) error {
	_, err := d.o.Store.Get(ctx, keys.Endpoint(ep.Network, ep.ID))
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if d.o.Pools != nil {
		for _, a := range ep.Addrs {
			if err := d.o.Pools.Reclaim(ctx, a.Masked(), a.Addr()); err != nil {
				return fmt.Errorf("republish endpoint %q: %w", ep.ID, err)
			}
		}
	}
	err = store.CreateJSON(ctx, d.o.Store, keys.Endpoint(ep.Network, ep.ID), ep)
	if errors.Is(err, store.ErrConflict) {
		return nil // it was there after all
	}
	if err == nil {
		err = noteChanges(ctx, d.o.Store, ep.Network, ep.ID)
	}
	if err != nil {
		return fmt.Errorf("republish endpoint %q: %w", ep.ID, err)
	}
	d.o.Log.WithFields(map[string]any{"network": ep.Network, "endpoint": ep.ID}).Warn("reconcile: republished endpoint purged while this host was away")
	return nil
}
