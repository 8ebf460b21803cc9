package names

import (
	"context"
	"net/url"

	"github.com/vxnet/vxnet/dockerapi"
)

// Docker is what the Syncer reads of the local Docker API (package
// dockerapi holds the client).
type Docker struct{ api *dockerapi.Client }

// errNotFound is a 404 from Docker.
var errNotFound = dockerapi.ErrNotFound

// NewDocker returns the Syncer's reads through api.
func NewDocker(api *dockerapi.Client) *Docker { return &Docker{api: api} }

// Endpoint is one entry of a network's Containers.
type Endpoint struct {
	EndpointID  string
	IPv4Address string
	IPv6Address string
}

// NetworkInfo is what the Syncer reads of GET /networks/<id>.
type NetworkInfo struct {
	ID         string
	Name       string
	IPAM       struct{ Config []struct{ Subnet string } }
	Containers map[string]Endpoint // container ID → its endpoint
}

// ContainerInfo is what the Syncer reads of GET /containers/<id>/json.
type ContainerInfo struct {
	ID              string
	Name            string // "/name"
	NetworkSettings struct {
		Networks map[string]struct {
			NetworkID  string
			EndpointID string
			Aliases    []string
			DNSNames   []string // Docker 26 on: name, aliases, short ID
		}
	}
}

// Network reads a network by ID or name; a missing one wraps errNotFound.
func (d *Docker) Network(ctx context.Context, id string) (*NetworkInfo, error) {
	var n NetworkInfo
	if err := d.api.Get(ctx, "/networks/"+url.PathEscape(id), nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Container reads a container; a missing one wraps errNotFound.
func (d *Docker) Container(ctx context.Context, id string) (*ContainerInfo, error) {
	var c ContainerInfo
	if err := d.api.Get(ctx, "/containers/"+url.PathEscape(id)+"/json", nil, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Events calls fn for each network connect/disconnect and container
// start/rename event until ctx ends or the stream breaks (the error says
// why; nil only when ctx ended). fn runs on the reading goroutine.
func (d *Docker) Events(ctx context.Context, fn func()) error {
	return d.api.Events(ctx, map[string][]string{
		"type":  {"network", "container"},
		"event": {"connect", "disconnect", "start", "rename"},
	}, fn)
}
