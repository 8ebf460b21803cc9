package driver

import (
	"context"
	"fmt"

	"github.com/docker/go-plugins-helpers/network"
)

// AllocateNetwork is called on a swarm manager for global-scope drivers.
// Its answer's options replace the network's driver options, so the
// user's options are validated and echoed back.
func (d *Driver) AllocateNetwork(_ context.Context, r *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	if err := validID("network", r.NetworkID); err != nil {
		return nil, err
	}
	generic := make(map[string]interface{}, len(r.Options))
	for k, v := range r.Options {
		generic[k] = v
	}
	if _, err := ParseNetworkOptions(map[string]interface{}{genericOptions: generic}); err != nil {
		return nil, err
	}
	return &network.AllocateNetworkResponse{Options: r.Options}, nil
}

// FreeNetwork is AllocateNetwork's counterpart; vxnet keeps no manager state.
func (d *Driver) FreeNetwork(_ context.Context, r *network.FreeNetworkRequest) error {
	return validID("network", r.NetworkID)
}

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
