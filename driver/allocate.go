package driver

import (
	"context"

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
