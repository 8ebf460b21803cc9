package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// GetCapabilities answers NetworkDriver.GetCapabilities.
func (d *Driver) GetCapabilities(context.Context) (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: string(d.o.Scope), ConnectivityScope: string(d.o.Scope)}, nil
}

// CreateNetwork joins this host to the cluster network for the request's
// subnet, creating the cluster record (and its VNI) if it is the first
// host, then builds the namespace. On failure nothing is left behind.
func (d *Driver) CreateNetwork(ctx context.Context, r *network.CreateNetworkRequest) (err error) {
	defer d.sweepSoon()
	if err := validID("network", r.NetworkID); err != nil {
		return err
	}
	opts, err := ParseNetworkOptions(r.Options)
	if err != nil {
		return err
	}
	sub, err := ParseIPAMData(r.IPv4Data, r.IPv6Data, d.ownsSpace)
	if err != nil {
		return err
	}
	if err := d.checkIPAM(r.NetworkID, sub); err != nil {
		return err
	}
	if opts.OwnEgress() && !hasV4(sub.Gateways) {
		return errkind.Errorf(errkind.BadRequest, "network %q: %s=%s needs an IPv4 subnet with a gateway", r.NetworkID, OptEgress, EgressOwn)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	want := &Network{
		Key:      keys.PoolID(sub.Pools[0]),
		VNI:      opts.VNI,
		Subnets:  sub.Pools,
		Gateways: sub.Gateways,
		Options:  opts,
	}
	n, err := d.join(ctx, want, r.NetworkID, sub.OwnIPAM)
	if err != nil {
		return err
	}
	undo := true
	defer func() {
		if undo {
			d.rollbackCreate(n, r.NetworkID)
		}
	}()
	if err := store.PutJSON(ctx, d.o.Store, keys.HostNetwork(d.o.HostID, r.NetworkID), LocalRef{Network: n.Key, OwnIPAM: sub.OwnIPAM}); err != nil {
		return fmt.Errorf("record network %q: %w", r.NetworkID, err)
	}
	if err := d.ensureNetwork(ctx, n, r.NetworkID); err != nil {
		return fmt.Errorf("network %q: %w", r.NetworkID, err)
	}
	for _, p := range n.Subnets {
		if d.o.Pools == nil {
			break
		}
		if err := d.o.Pools.SetupDone(ctx, p); err != nil {
			return fmt.Errorf("network %q: %w", r.NetworkID, err)
		}
	}
	undo = false
	d.startWatch(n)
	d.logNet(n).WithField("docker_network", r.NetworkID).Info("network created")
	return nil
}

// DeleteNetwork removes this host from the network: its local endpoints,
// the namespace, and its membership; the last host also removes the cluster
// record and the VNI. An unknown network is not an error (Docker retries
// deletes after failures).
func (d *Driver) DeleteNetwork(ctx context.Context, r *network.DeleteNetworkRequest) error {
	defer d.sweepSoon()
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

// checkIPAM refuses Docker's default IPAM where it would hand out the same
// addresses on several hosts: a multi-host store with local scope. In
// global scope (swarm) Docker's IPAM runs on the manager, cluster-wide.
func (d *Driver) checkIPAM(dockerID string, sub Subnets) error {
	if sub.OwnIPAM || !d.o.MultiHost || d.o.Scope.Swarm() {
		return nil
	}
	return errkind.Errorf(errkind.BadRequest, "network %q: Docker's default IPAM gives the same addresses to containers on every host; "+
		"with a store shared by several hosts create the network with --ipam-driver vxnet", dockerID)
}

// joinWait bounds how long a create waits for the network record of a
// create of the same network on another host that holds its explicit VNI
// (milliseconds normally; callbacks answer within 25 s).
const joinWait = 5 * time.Second

// errCreating: another host is creating the same network (it holds the
// explicit VNI asked for, for the same cluster key); join waits for it.
var errCreating = errors.New("is being created by host")

// join adds this host to the cluster network want.Key, creating it when
// absent. A lost CAS on the record is retried (store.Retry); a create of
// the same network on another host is waited for up to joinWait.
func (d *Driver) join(ctx context.Context, want *Network, dockerID string, ownIPAM bool) (*Network, error) {
	if err := d.checkOverlap(ctx, want); err != nil {
		return nil, err
	}
	waitUntil := time.Now().Add(joinWait)
	var waited error // the create on another host waited for
	r := store.Retrying(ctx)
	for r.Next() {
		cur, idx, err := store.GetJSON[Network](ctx, d.o.Store, keys.Network(want.Key))
		switch {
		case errors.Is(err, store.ErrNotFound):
			n, err := d.createCluster(ctx, want, dockerID)
			if errors.Is(err, store.ErrConflict) {
				r.Now() // another host created it first: join that one
				continue
			}
			if errors.Is(err, errCreating) {
				if !time.Now().Before(waitUntil) {
					return nil, errkind.Errorf(errkind.Conflict, "join network %s: %w, whose network record did not appear within %s", want.Key, err, joinWait)
				}
				waited = err
				pause.For(ctx, 10*retryPause())
				r.Waited()
				continue
			}
			return n, err
		case err != nil:
			return nil, fmt.Errorf("read network %s: %w", want.Key, err)
		}
		if err := compatible(cur, want); err != nil {
			return nil, err
		}
		if other, ok := cur.Hosts[d.o.HostID]; ok && other != dockerID {
			if ownIPAM && d.takeOver(ctx, cur, other) {
				r.Now()
				continue
			}
			return nil, errkind.Errorf(errkind.Conflict, "subnet %s is already used by vxnet network %q on this host", want.Subnets[0], other)
		}
		next := *cur
		next.Hosts = copyWith(cur.Hosts, d.o.HostID, dockerID)
		err = store.CASJSON(ctx, d.o.Store, keys.Network(want.Key), &next, idx)
		if err == nil {
			return &next, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("join network %s: %w", want.Key, err)
		}
	}
	if waited != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("join network %s: %w, until the call's deadline: %w", want.Key, waited, ctx.Err())
	}
	return nil, r.Err(fmt.Sprintf("join network %q", keys.Network(want.Key)))
}

// createCluster claims the subnets (see subnets.go), checks them against
// the networks, reserves a VNI and writes a new cluster record, then drops
// the claim; a lost race for the record releases the VNI and returns
// ErrConflict.
func (d *Driver) createCluster(ctx context.Context, want *Network, dockerID string) (*Network, error) {
	n := *want
	n.Hosts = map[string]string{d.o.HostID: dockerID}
	nonce, err := d.claimSubnets(ctx, want)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := d.releaseClaim(context.WithoutCancel(ctx), nonce); err != nil {
			d.logNet(&n).WithError(err).Error("release subnet claim")
		}
	}()
	if err := d.checkOverlap(ctx, want); err != nil {
		return nil, err
	}
	vni, err := d.reserveVNI(ctx, want.Options.VNI, want.Key)
	if err != nil {
		return nil, err
	}
	n.VNI = vni
	if err := createNetworkRecord(ctx, d.o.Store, &n); err != nil {
		if derr := d.o.Store.Delete(context.WithoutCancel(ctx), keys.VNI(vni)); derr != nil {
			d.logNet(&n).WithError(derr).Error("release VNI after failed create")
		}
		return nil, err
	}
	return &n, nil
}

// reserveVNI takes the explicit VNI or the lowest free one from VNIOffset.
func (d *Driver) reserveVNI(ctx context.Context, explicit uint32, key string) (uint32, error) {
	if explicit != 0 {
		err := store.CreateJSON(ctx, d.o.Store, keys.VNI(explicit), VNIRecord{Network: key, Host: d.o.HostID})
		if errors.Is(err, store.ErrConflict) {
			owner, _, _ := store.GetJSON[VNIRecord](ctx, d.o.Store, keys.VNI(explicit))
			if owner != nil && owner.Network == key {
				return 0, fmt.Errorf("VNI %d: network %s %w %s", explicit, key, errCreating, owner.Host)
			}
			name := "another network"
			if owner != nil {
				name = "network " + strings.ReplaceAll(owner.Network, "_", "/")
			}
			return 0, errkind.Errorf(errkind.Conflict, "VNI %d is already used by vxnet %s", explicit, name)
		}
		if err != nil {
			return 0, fmt.Errorf("reserve VNI %d: %w", explicit, err)
		}
		return explicit, nil
	}
	r := store.Retrying(ctx)
	for r.Next() {
		kvs, _, err := d.o.Store.List(ctx, keys.VNIs)
		if err != nil {
			return 0, fmt.Errorf("list VNIs: %w", err)
		}
		used := map[uint32]bool{}
		for _, kv := range kvs {
			if v, ok := keys.ParseVNI(kv.Key); ok {
				used[v] = true
			}
		}
		vni := d.o.VNIOffset
		for used[vni] && vni < maxVNI {
			vni++
		}
		if used[vni] {
			return 0, errors.New("no free VNI left")
		}
		err = store.CreateJSON(ctx, d.o.Store, keys.VNI(vni), VNIRecord{Network: key, Host: d.o.HostID})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reserve VNI %d: %w", vni, err)
		}
		return vni, nil
	}
	return 0, r.Err(fmt.Sprintf("reserve a VNI under %q", keys.VNIs))
}

// compatible tells whether a host may join cur with the options it asked for.
func compatible(cur, want *Network) error {
	if !slices.Equal(cur.Subnets, want.Subnets) {
		return errkind.Errorf(errkind.Conflict, "subnets %v differ from vxnet network %s with subnets %v", want.Subnets, cur.Key, cur.Subnets)
	}
	if want.Options.VNI != 0 && want.Options.VNI != cur.VNI {
		return errkind.Errorf(errkind.Conflict, "VNI %d differs from VNI %d of vxnet network with subnet %s", want.Options.VNI, cur.VNI, cur.Subnets[0])
	}
	if cur.Options.Egress != want.Options.Egress {
		return errkind.Errorf(errkind.Conflict, "option %s=%q differs from %q of vxnet network with subnet %s", OptEgress, egressName(want.Options.Egress), egressName(cur.Options.Egress), cur.Subnets[0])
	}
	if !slices.Equal(cur.Gateways, want.Gateways) {
		return errkind.Errorf(errkind.Conflict, "gateways %v differ from gateways %v of vxnet network with subnet %s", want.Gateways, cur.Gateways, cur.Subnets[0])
	}
	return nil
}

// checkOverlap refuses subnets overlapping another cluster network's (the
// vxnet IPAM refuses them too; this covers networks with another IPAM).
// Only after a claim (claimSubnets) does it also hold against creates on
// other hosts at the same time.
func (d *Driver) checkOverlap(ctx context.Context, want *Network) error {
	// Read through netCache.records: each record again only when it
	// changed (they grow with their hosts; every create read them all).
	nets, err := d.nets.records.List(ctx, d.o.Store, keys.Networks)
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, c := range nets {
		other := c.Value
		if other.Key == want.Key {
			continue
		}
		if a, b, ok := overlap(want.Subnets, other.Subnets); ok {
			return errkind.Errorf(errkind.Conflict, "subnet %s overlaps subnet %s of vxnet network %s", a, b, other.Key)
		}
	}
	return nil
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func egressName(e string) string {
	if e == "" {
		return EgressGwbridge
	}
	return e
}

func hasV4(ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() })
}
