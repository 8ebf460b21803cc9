package driver

import (
	"context"
	"fmt"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/errkind"
)

// DiscoverNew is not used: peers come from the store, not from Docker.
func (d *Driver) DiscoverNew(context.Context, *network.DiscoveryNotification) error { return nil }

// DiscoverDelete is not used either.
func (d *Driver) DiscoverDelete(context.Context, *network.DiscoveryNotification) error { return nil }

// portMapOption carries a container's published ports (-p, -P) in
// ProgramExternalConnectivity's Options.
const portMapOption = "com.docker.network.portmap"

// ProgramExternalConnectivity needs no work by default: Docker publishes
// ports through docker_gwbridge. With egress=own there is no
// docker_gwbridge endpoint, and vxnet does not publish ports itself (yet):
// a container with published ports is refused, naming the option.
func (d *Driver) ProgramExternalConnectivity(ctx context.Context, r *network.ProgramExternalConnectivityRequest) error {
	if err := d.known(ctx, r.NetworkID, r.EndpointID); err != nil {
		return err
	}
	pm, _ := r.Options[portMapOption].([]interface{})
	if len(pm) == 0 {
		return nil
	}
	d.mu.RLock()
	n, err := d.lookup(ctx, r.NetworkID)
	d.mu.RUnlock()
	if err != nil || !n.Options.OwnEgress() {
		return err
	}
	return errkind.Errorf(errkind.BadRequest, "network %q has %s=%s, which does not publish ports: run the container without -p/-P, "+
		"or publish them from a network with %s=%s (the default)", r.NetworkID, OptEgress, EgressOwn, OptEgress, EgressGwbridge)
}

// RevokeExternalConnectivity is its counterpart.
func (d *Driver) RevokeExternalConnectivity(ctx context.Context, r *network.RevokeExternalConnectivityRequest) error {
	return d.known(ctx, r.NetworkID, r.EndpointID)
}

func (d *Driver) known(ctx context.Context, netID, epID string) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, _, err := d.endpoint(ctx, netID, epID); err != nil {
		return fmt.Errorf("external connectivity: %w", err)
	}
	return nil
}
