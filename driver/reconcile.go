package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Reconcile makes the kernel match the store for this host: it rebuilds
// the namespace of every network this host has (recreating what is
// missing), deletes bridge ports of endpoints that no longer exist, and
// deletes namespaces of networks this host no longer has. It runs at start
// and periodically; running containers keep their veths throughout.
func (d *Driver) Reconcile(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	kvs, _, err := d.o.Store.List(ctx, d.localPrefix())
	if err != nil {
		return fmt.Errorf("reconcile: list networks of host %q: %w", d.o.HostID, err)
	}
	have, err := d.o.Plane.Networks()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	existing := map[uint32]bool{}
	for _, vni := range have {
		existing[vni] = true
	}
	want := map[uint32]bool{}
	var errs []error
	for _, kv := range kvs {
		dockerID := strings.TrimPrefix(kv.Key, d.localPrefix())
		n, err := d.lookup(ctx, dockerID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[n.VNI] = true
		if err := d.reconcileNetwork(ctx, n, existing[n.VNI]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, vni := range have {
		if want[vni] {
			continue
		}
		d.o.Log.WithField("vni", vni).Warn("reconcile: removing namespace of a network this host no longer has")
		if err := d.o.Plane.DeleteNetwork(vni); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) reconcileNetwork(ctx context.Context, n *Network, existed bool) error {
	if err := d.o.Plane.EnsureNetwork(d.netConfig(n)); err != nil {
		return fmt.Errorf("reconcile network %s: %w", n.Key, err)
	}
	if !existed {
		d.logNet(n).Warn("reconcile: recreated missing namespace")
	}
	eps, err := d.endpoints(ctx, n.Key)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, ep := range eps {
		if ep.Host == d.o.HostID {
			known[ep.ID[:12]] = true
		}
	}
	ports, err := d.o.Plane.Endpoints(n.VNI)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if known[p[:min(12, len(p))]] {
			continue
		}
		d.logNet(n).WithField("endpoint", p).Warn("reconcile: removing veth of an unknown endpoint")
		if err := d.o.Plane.DeleteEndpoint(n.VNI, p); err != nil {
			return err
		}
	}
	return nil
}
