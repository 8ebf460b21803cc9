package driver

import (
	"context"
	"fmt"

	"github.com/docker/go-plugins-helpers/network"
)

// DiscoverNew is not used: peers come from the store, not from Docker.
func (d *Driver) DiscoverNew(context.Context, *network.DiscoveryNotification) error { return nil }

// DiscoverDelete is not used either.
func (d *Driver) DiscoverDelete(context.Context, *network.DiscoveryNotification) error { return nil }

// ProgramExternalConnectivity needs no work: Docker publishes ports
// through docker_gwbridge.
func (d *Driver) ProgramExternalConnectivity(ctx context.Context, r *network.ProgramExternalConnectivityRequest) error {
	return d.known(ctx, r.NetworkID, r.EndpointID)
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
