package swarm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
)

// Guard refuses endpoints of tasks of VIP-mode services (see the package
// comment).
type Guard struct {
	Store  store.Store
	Docker *Docker
	// Wait bounds how long Admit waits for a manager's census to record
	// a new service (4 s when zero); past it the endpoint is admitted.
	Wait time.Duration
	Log  *logrus.Entry
}

// ErrVIPMode is wrapped by Admit's refusals.
var ErrVIPMode = errors.New("vxnet cannot balance a swarm virtual IP (swarm balances VIPs only on its own overlay driver), so connections to the service name would hang: create the service with --endpoint-mode dnsrr (in a stack file: deploy: endpoint_mode: dnsrr)")

// Admit returns an error wrapping ErrVIPMode when the endpoint with addrs
// on the swarm network networkID belongs to a task of a service in VIP
// mode. Anything else is admitted: containers that are no swarm task, and,
// with a warning, tasks whose service the Docker API or the store cannot
// tell about (vxnet does not refuse what it cannot judge).
func (g *Guard) Admit(ctx context.Context, networkID string, addrs []netip.Prefix) error {
	list, err := g.Docker.taskContainers(ctx)
	if err != nil {
		g.Log.WithError(err).WithField("network", networkID).Warn("swarm guard: task containers unknown; endpoint admitted unchecked")
		return nil
	}
	task, netName, ok := findTask(list, networkID, addrs)
	if !ok {
		return nil
	}
	id, name := task.Labels[labelServiceID], task.Labels[labelServiceName]
	rec, err := g.record(ctx, id)
	if err != nil {
		g.Log.WithError(err).WithFields(logrus.Fields{"network": networkID, "service": name}).Warn("swarm guard: endpoint mode of the service unknown; endpoint admitted unchecked")
		return nil
	}
	if rec.Mode == ModeDNSRR {
		return nil
	}
	return fmt.Errorf("service %q (endpoint mode %s) on vxnet network %q: %w", name, rec.Mode, netName, ErrVIPMode)
}

// record reads the service's record, polling until a manager's census has
// written it or Wait has passed.
func (g *Guard) record(ctx context.Context, serviceID string) (*Record, error) {
	wait := g.Wait
	if wait <= 0 {
		wait = 4 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		rec, _, err := store.GetJSON[Record](ctx, g.Store, Key(serviceID))
		if err == nil {
			return rec, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no record of service %s after %s (is the plugin running on a manager?): %w", serviceID, wait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findTask picks the task container with one of addrs on networkID, and
// the network's name there. An address may have served an earlier task
// whose container is still listed: the newest container is the one being
// started.
func findTask(list []apiContainer, networkID string, addrs []netip.Prefix) (apiContainer, string, bool) {
	var best apiContainer
	var bestNet string
	found := false
	for _, c := range list {
		for name, n := range c.NetworkSettings.Networks {
			if n.NetworkID != networkID {
				continue
			}
			have := []string{n.IPAddress}
			if n.IPAMConfig != nil {
				have = append(have, n.IPAMConfig.IPv4Address, n.IPAMConfig.IPv6Address)
			}
			if !slices.ContainsFunc(addrs, func(a netip.Prefix) bool { return slices.Contains(have, a.Addr().String()) }) {
				continue
			}
			if !found || c.Created > best.Created {
				best, bestNet, found = c, name, true
			}
		}
	}
	return best, bestNet, found
}
