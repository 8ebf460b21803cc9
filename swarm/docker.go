package swarm

import (
	"context"
	"encoding/json"
	"net/url"
	"time"

	"github.com/vxnet/vxnet/dockerapi"
)

// Docker is the little of the local Docker Engine API this package reads:
// GET /info, /services and /containers/json (package dockerapi holds the
// client).
type Docker struct{ api *dockerapi.Client }

// NewDocker returns this package's reads through api.
func NewDocker(api *dockerapi.Client) *Docker { return &Docker{api: api} }

// callTimeout bounds each read: Guard asks inside CreateEndpoint, which
// dockerd waits for.
const callTimeout = 3 * time.Second

// get decodes the JSON answer to GET path?query into v.
func (d *Docker) get(ctx context.Context, path string, query url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return d.api.Get(ctx, path, query, v)
}

// IsManager tells whether this daemon is a swarm manager (it then answers
// GET /services).
func (d *Docker) IsManager(ctx context.Context) (bool, error) {
	var info struct {
		Swarm struct{ ControlAvailable bool }
	}
	if err := d.get(ctx, "/info", nil, &info); err != nil {
		return false, err
	}
	return info.Swarm.ControlAvailable, nil
}

// apiService is what GET /services tells of a service.
type apiService struct {
	ID   string
	Spec struct {
		Name         string
		TaskTemplate struct {
			Networks []struct{ Target string }
		}
		Networks     []struct{ Target string } // before API 1.25
		EndpointSpec *struct{ Mode string }
	}
	Endpoint struct {
		VirtualIPs []struct{ NetworkID string }
	}
}

// Services lists the swarm's services as Records by service ID.
func (d *Docker) Services(ctx context.Context) (map[string]Record, error) {
	var list []apiService
	if err := d.get(ctx, "/services", nil, &list); err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(list))
	for _, s := range list {
		out[s.ID] = s.record()
	}
	return out, nil
}

// record reduces a service to what a node needs: its name, endpoint mode
// (empty in the spec means vip, Docker's default) and networks.
func (s apiService) record() Record {
	r := Record{Name: s.Spec.Name, Mode: ModeVIP}
	if s.Spec.EndpointSpec != nil && s.Spec.EndpointSpec.Mode != "" {
		r.Mode = s.Spec.EndpointSpec.Mode
	}
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			r.Networks = append(r.Networks, id)
		}
	}
	for _, n := range s.Spec.TaskTemplate.Networks {
		add(n.Target)
	}
	for _, n := range s.Spec.Networks {
		add(n.Target)
	}
	for _, v := range s.Endpoint.VirtualIPs {
		add(v.NetworkID)
	}
	return r
}

// Task labels swarm puts on every task container.
const (
	labelServiceID   = "com.docker.swarm.service.id"
	labelServiceName = "com.docker.swarm.service.name"
)

// apiContainer is what GET /containers/json tells of a container.
type apiContainer struct {
	ID              string
	Created         int64
	Labels          map[string]string
	NetworkSettings struct {
		Networks map[string]struct {
			NetworkID  string
			IPAddress  string
			IPAMConfig *struct{ IPv4Address, IPv6Address string }
		}
	}
}

// taskContainers lists the containers of swarm tasks on this node, the
// ones being created included. The list comes from the daemon's container
// view, which a container start does not lock: safe to ask from inside a
// network callback of that start.
func (d *Docker) taskContainers(ctx context.Context) ([]apiContainer, error) {
	filters, err := json.Marshal(map[string][]string{"label": {labelServiceID}})
	if err != nil {
		return nil, err
	}
	var list []apiContainer
	err = d.get(ctx, "/containers/json", url.Values{"all": {"1"}, "filters": {string(filters)}}, &list)
	return list, err
}
