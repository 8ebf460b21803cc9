package dataplane

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// InUse lists the bridge ports of a network (as Endpoints does) whose
// container side has left the host namespace, where EnsureEndpoint creates
// it: Docker moved it into a running container's sandbox. A port whose
// container side is still in the host namespace was never taken (a Join cut
// short) and may go; one in use may not, whatever the store says.
func (p *Plane) InUse(vni uint32) ([]string, error) {
	ids, err := p.Endpoints(vni)
	if err != nil {
		return nil, err
	}
	var used []string
	for _, id := range ids {
		_, err := netlink.LinkByName(hostPrefix + id)
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf):
			used = append(used, id)
		case err != nil:
			return nil, fmt.Errorf("look up container side %q of port %q (vni %d): %w", hostPrefix+id, portPrefix+id, vni, err)
		}
	}
	return used, nil
}
