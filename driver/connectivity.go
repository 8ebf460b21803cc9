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

// ProgramExternalConnectivity needs no work by default: Docker publishes
// ports through docker_gwbridge. With egress=own there is no
// docker_gwbridge endpoint, and vxnet publishes the container's ports
// itself (ports.go). Docker calls it after Join, for the endpoint that
// gives the container its gateway.
func (d *Driver) ProgramExternalConnectivity(ctx context.Context, r *network.ProgramExternalConnectivityRequest) error {
	ep, n, err := d.knownEndpoint(ctx, r.NetworkID, r.EndpointID)
	if err != nil || !n.Options.OwnEgress() {
		return err
	}
	bindings, err := parsePortMap(r.NetworkID, r.Options)
	if err != nil || len(bindings) == 0 {
		return err
	}
	return d.publishPorts(ep, n, bindings)
}

// RevokeExternalConnectivity removes what ProgramExternalConnectivity
// published.
func (d *Driver) RevokeExternalConnectivity(ctx context.Context, r *network.RevokeExternalConnectivityRequest) error {
	_, n, err := d.knownEndpoint(ctx, r.NetworkID, r.EndpointID)
	if err != nil || !n.Options.OwnEgress() {
		return err
	}
	return d.o.Plane.Unpublish(n.VNI, r.EndpointID)
}

func (d *Driver) knownEndpoint(ctx context.Context, netID, epID string) (*Endpoint, *Network, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ep, n, err := d.endpoint(ctx, netID, epID)
	if err != nil {
		return nil, nil, fmt.Errorf("external connectivity: %w", err)
	}
	return ep, n, nil
}
